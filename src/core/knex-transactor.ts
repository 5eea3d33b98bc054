/**
 * Lighter knex transactions.
 *
 * knex hands every transaction's callback a "transactor": a function object made by `makeKnex`, which
 * copies some 120 query methods onto it as fresh closures, defines its accessors, builds a context of
 * a dozen more closures and copies an EventEmitter in — about 20 KB per transaction, and V8 soon
 * allocates it straight into the old generation (the allocation site survives scavenges). A worker
 * running a transaction per job fills the old generation with them: in the webhooks bench they were
 * two thirds of everything a major GC collected, and major GCs are the event loop's longest pauses.
 *
 * This module replaces `Transaction.prototype._onAcquire` (knex 3.3's code, below, with its private
 * helpers) so that a transactor is a small function whose methods live on one shared prototype and
 * whose context inherits the shared context methods. What a transactor offers is unchanged: the
 * shared parts are taken from a transactor knex itself makes (the test compares the two, so a knex
 * upgrade that adds or changes a member fails it), and knex versions other than the one this was
 * written against are left alone.
 *
 * knex is MIT-licensed; `onAcquire`, `makeTxClient` and `makeTransactor` follow
 * knex/lib/execution/transaction.js of knex 3.3.0.
 */
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** The knex release whose transaction internals this mirrors. */
export const KNEX_VERSION = '3.3.0';

type Fn = (...args: any[]) => any;

/** Per-instance members of a knex object (everything else is shared). */
const OWN = new Set(['length', 'name', 'prototype', 'arguments', 'caller', 'context', '_events', '_eventsCount', '_maxListeners', '_internalListeners']);
/**
 * Context members of each object's own: its client and user params. (`transaction` and
 * `withUserParams` are shared too: makeTransactor gives every transactor its own, as knex does.)
 */
const OWN_CONTEXT = new Set(['client', 'userParams']);

interface Shared {
  /** Query methods, accessors (client, userParams, schema, fn…), context delegates, EventEmitter methods. */
  proto: object;
  /** The context methods (queryBuilder, raw, _transaction, ref…), whose `this` is the context. */
  contextProto: object;
}

let shared: Shared | null = null;
let applied = false;

/** The shared parts, read off a knex object made the knex way (on a stand-in client). */
function sharedParts(): Shared {
  if (shared) return shared;
  const makeKnex = require('knex/lib/knex-builder/make-knex.js') as (client: unknown) => any;
  const model = makeKnex(new EventEmitter());
  const proto = Object.create(Function.prototype);
  for (const [key, d] of Object.entries(Object.getOwnPropertyDescriptors(model))) if (!OWN.has(key)) Object.defineProperty(proto, key, d);
  const contextProto = {};
  for (const [key, d] of Object.entries(Object.getOwnPropertyDescriptors(model.context))) if (!OWN_CONTEXT.has(key)) Object.defineProperty(contextProto, key, d);
  shared = { proto, contextProto };
  return shared;
}

/**
 * What `makeKnex(client)` makes, for a transaction: callable as `trx('table')`, with every member
 * knex gives its objects; the shared ones inherited.
 */
function lightKnex(client: any): any {
  const { proto, contextProto } = sharedParts();
  const knex: any = function knex(tableName?: string, options?: unknown) {
    const qb = knex.context.queryBuilder();
    if (!tableName) knex.context.client.logger.warn('calling knex without a tableName is deprecated. Use knex.queryBuilder() instead.');
    return tableName ? qb.table(tableName, options) : qb;
  };
  Object.setPrototypeOf(knex, proto);
  knex.context = Object.create(contextProto);
  knex.client = client;
  knex.userParams = {};
  // The EventEmitter state makeKnex copies from a fresh emitter (its methods are on the prototype).
  knex._events = Object.create(null);
  knex._eventsCount = 0;
  knex._maxListeners = undefined;
  knex._internalListeners = [];
  // Client events pass through to the object's own listeners, as makeKnex wires them.
  const pass = (eventName: string, listener: Fn) => {
    client.on(eventName, listener);
    knex._internalListeners.push({ eventName, listener });
  };
  pass('start', (obj: unknown) => knex.emit('start', obj));
  pass('query', (obj: unknown) => knex.emit('query', obj));
  pass('query-error', (err: unknown, obj: unknown) => knex.emit('query-error', err, obj));
  pass('query-response', (response: unknown, obj: unknown, builder: unknown) => knex.emit('query-response', response, obj, builder));
  return knex;
}

function completedError(): never {
  throw new Error('Transaction query already complete, run with DEBUG=knex:tx for more info');
}

// knex 3.3.0 makeTxClient: a client that always uses the transaction's connection.
function makeTxClient(trx: any, client: any, connection: unknown): any {
  const trxClient = Object.create(client.constructor.prototype);
  trxClient.version = client.version;
  trxClient.config = client.config;
  trxClient.driver = client.driver;
  trxClient.connectionSettings = client.connectionSettings;
  trxClient.transacting = true;
  trxClient.valueForUndefined = client.valueForUndefined;
  trxClient.logger = client.logger;

  trxClient.on('start', function (arg: unknown) {
    trx.emit('start', arg);
    client.emit('start', arg);
  });
  trxClient.on('query', function (arg: unknown) {
    trx.emit('query', arg);
    client.emit('query', arg);
  });
  trxClient.on('query-error', function (err: unknown, obj: unknown) {
    trx.emit('query-error', err, obj);
    client.emit('query-error', err, obj);
  });
  trxClient.on('query-response', function (response: unknown, obj: unknown, builder: unknown) {
    trx.emit('query-response', response, obj, builder);
    client.emit('query-response', response, obj, builder);
  });

  const _query = trxClient.query;
  trxClient.query = function (conn: unknown, obj: unknown) {
    const completed = trx.isCompleted();
    return new Promise(function (resolve, reject) {
      try {
        if (conn !== connection) throw new Error('Invalid connection for transaction query.');
        if (completed) completedError();
        resolve(_query.call(trxClient, conn, obj));
      } catch (e) {
        reject(e);
      }
    });
  };
  const _stream = trxClient.stream;
  trxClient.stream = function (conn: unknown, obj: unknown, stream: unknown, options: unknown) {
    const completed = trx.isCompleted();
    return new Promise(function (resolve, reject) {
      try {
        if (conn !== connection) throw new Error('Invalid connection for transaction query.');
        if (completed) completedError();
        resolve(_stream.call(trxClient, conn, obj, stream, options));
      } catch (e) {
        reject(e);
      }
    });
  };
  trxClient.acquireConnection = function () {
    return Promise.resolve(connection);
  };
  trxClient.releaseConnection = function () {
    return Promise.resolve();
  };
  return trxClient;
}

// knex 3.3.0 makeTransactor, with lightKnex for makeKnex.
function makeTransactor(trx: any, connection: unknown, trxClient: any): any {
  const transactor = lightKnex(trxClient);
  transactor.context.withUserParams = () => {
    throw new Error('Cannot set user params on a transaction - it can only inherit params from main knex instance');
  };
  transactor.isTransaction = true;
  transactor.userParams = trx.userParams || {};
  transactor.context.transaction = function (this: any, container: unknown, options?: any) {
    if (!options) {
      options = { doNotRejectOnRollback: true };
    } else if (options.doNotRejectOnRollback === undefined) {
      options.doNotRejectOnRollback = true;
    }
    return this._transaction(container, options, trx);
  };
  transactor.savepoint = function (container: unknown, options: unknown) {
    return transactor.transaction(container, options);
  };
  if (trx.client.transacting) {
    transactor.commit = (value: unknown) => trx.release(connection, value);
    transactor.rollback = (error: unknown) => trx.rollbackTo(connection, error);
  } else {
    transactor.commit = (value: unknown) => trx.commit(connection, value);
    transactor.rollback = (error: unknown) => trx.rollback(connection, error);
  }
  transactor.isCompleted = () => trx.isCompleted();
  return transactor;
}

// knex 3.3.0 Transaction.prototype._onAcquire, with the functions above.
async function onAcquire(this: any, container: Fn, connection: unknown): Promise<unknown> {
  const trxClient = (this.trxClient = makeTxClient(this, this.client, connection));
  const init = this.client.transacting ? this.savepoint(connection) : this.begin(connection);
  const executionPromise = new Promise((resolver, rejecter) => {
    this._resolver = resolver;
    this._rejecter = rejecter;
  });
  init
    .then(() => makeTransactor(this, connection, trxClient))
    .then((transactor: any) => {
      this.transactor = transactor;
      if (this.outerTx) transactor.parentTransaction = this.outerTx.transactor;
      transactor.executionPromise = executionPromise;
      let result;
      try {
        result = container(transactor);
      } catch (err) {
        result = Promise.reject(err);
      }
      if (result && result.then && typeof result.then === 'function') {
        result.then((val: unknown) => transactor.commit(val)).catch((err: unknown) => transactor.rollback(err));
      }
      return null;
    })
    .catch((e: unknown) => this._rejecter(e));
  return executionPromise;
}

/**
 * Makes knex's transactions use light transactors, once per process. Returns false (and changes
 * nothing) when the installed knex is not the release this mirrors.
 */
export function lightenTransactions(): boolean {
  if (applied) return true;
  const version = (require('knex/package.json') as { version: string }).version;
  if (version !== KNEX_VERSION) return false;
  const Transaction = require('knex/lib/execution/transaction.js') as { prototype: { _onAcquire: unknown } };
  sharedParts();
  Transaction.prototype._onAcquire = onAcquire;
  applied = true;
  return true;
}

/** For the test: a transactor made the knex way and one made here, on the same client. */
export function transactorsForComparison(client: unknown): { knexMade: any; light: any } {
  const makeKnex = require('knex/lib/knex-builder/make-knex.js') as (client: unknown) => any;
  return { knexMade: makeKnex(client), light: lightKnex(client) };
}
