/**
 * Builds everything the app needs from a Config: database, Redis, secrets, jobs, events, plugins,
 * services. server.ts, the CLI and the tests all build their runtime here; nothing is a module-level
 * singleton.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Eta } from 'eta';
import session from 'express-session';
import { RedisStore } from 'connect-redis';
import { createClient, type RedisClientType } from 'redis';
import type { Config } from './config.ts';
import { configureMaxAmounts } from './core/money.ts';
import { createDb, migrateLatest, type Db } from './core/db.ts';
import { checkpointInBackground } from './core/sqlite-checkpoint.ts';
import { systemClock, type Clock } from './core/clock.ts';
import { createLogger, type Logger } from './core/log.ts';
import { loadOrCreateSecrets, secretsFrom, type Secrets } from './core/secrets.ts';
import { JobQueue, type JobQueueOptions } from './core/jobs.ts';
import { EventBus } from './core/events.ts';
import { Scheduler } from './core/scheduler.ts';
import { ChangeFeed } from './core/changes.ts';
import { LiveFeed, type LiveSignal } from './core/live.ts';
import { idSealer } from './core/sealed-ids.ts';
import { ViewRecorder } from './features/analytics/index.ts';
import { countPayment, countRefund, createAnalytics, type Analytics } from './features/analytics/index.ts';
import { randomToken } from './core/ids.ts';
import { DeadlineStore, KnexSessionStore } from './core/session-store.ts';
import { createRegistries, type Registries } from './core/plugins/registries.ts';
import { PluginHost, builtinSources, externalSource, BUILTIN_PLUGINS_DIR, type PluginSource } from './core/plugins/host.ts';
import { createMerchantService, toPluginMerchant, type MerchantService } from './features/merchants/index.ts';
import { createBrandingService, type BrandingService } from './features/branding/index.ts';
import { createApiKeyService, type ApiKeyService } from './features/api-keys/index.ts';
import { createTagService, type TagService } from './features/tags/index.ts';
import { createProductService, type ProductService } from './features/products/index.ts';
import { createLinkService, createLinkState, type LinkService } from './features/links/index.ts';
import { createCheckoutService, receiptKeys, type CheckoutService } from './features/checkout/index.ts';
import { createCustomerService, createPaymentProfiles, type CustomerService, type PaymentProfiles } from './features/customers/index.ts';
import { createCouponService, type CouponService } from './features/coupons/index.ts';
import { createPaymentQueries, type PaymentQueries } from './features/checkout/index.ts';
import { pruneIdempotencyKeys } from './core/idempotency.ts';
import { LinkTokens } from './features/sending/index.ts';
import { createTemplateService, type TemplateService } from './features/deliveries/index.ts';
import { createDeliveryService, type DeliveryService } from './features/deliveries/index.ts';
import { createChannelDirectory } from './features/deliveries/index.ts';
import { createReminderService, type ReminderService } from './features/reminders/index.ts';
import { createActionService, type ActionService } from './features/actions/index.ts';
import { createSendingService, type SendingService } from './features/sending/index.ts';
import { actionCustomer, createPluginCustomerServices } from './features/actions/index.ts';
import { createPluginCheckoutServices, createProviderReports } from './features/checkout/index.ts';
import { createPluginSubscriptionServices, createSubscriptionService, type SubscriptionService } from './features/subscriptions/index.ts';
import { createRefundService, createSavedProfiles, type RefundService, type SavedProfiles } from './features/checkout/index.ts';
import { createProviderSettingsService, type ProviderSettingsService } from './features/providers/index.ts';
import { createSealer } from './core/encryption.ts';
import { createDataBuilder, createSender, createWebhookService, type Sender, type WebhookService } from './features/webhooks/index.ts';
import { createAccountService, createLoginLimiter, createResetLimiter, type AccountService, type LoginLimiter, type LoginLimits, type ResetLimiter, type ResetLimits } from './features/accounts/index.ts';
import { createLimiter, type Limit, type Limiter } from './core/rate-limit.ts';
import { createRequestImports, createRequestService, type RequestImports, type RequestService } from './features/requests/index.ts';
import { createReportService, type ReportService } from './features/reports/index.ts';

export const VIEWS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../views');
/** The renderers of email messages (views/emails): HTML, and plain text. */
export function emailViews(): { html: Eta; text: Eta } {
  return {
    html: new Eta({ views: VIEWS_DIR, cache: true, autoEscape: true }),
    // Plain-text email bodies: nothing to escape (escaping would print &amp; to the reader).
    text: new Eta({ views: VIEWS_DIR, cache: true, autoEscape: false, autoTrim: false }),
  };
}
export const PUBLIC_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../public');

export type Redis = RedisClientType<any, any, any>;

export interface Services {
  merchants: MerchantService;
  /** Password reset links, sign-up invitations, password and email changes. */
  accounts: AccountService;
  apiKeys: ApiKeyService;
  tags: TagService;
  products: ProductService;
  /** Coupons (promo codes) and their redemptions. */
  coupons: CouponService;
  links: LinkService;
  checkout: CheckoutService;
  customers: CustomerService;
  /** Customers' saved payment profiles (a card saved with Stripe). */
  profiles: PaymentProfiles;
  /** Removing a saved profile: the provider forgets the card, then the record goes. */
  savedProfiles: SavedProfiles;
  /** Reading payments (the JSON API); checkout writes them. */
  payments: PaymentQueries;
  /** Reading views, activity and daily stats; retention. */
  analytics: Analytics;
  /** Per-merchant message templates. */
  templates: TemplateService;
  /** The outbox of messages to customers. */
  deliveries: DeliveryService;
  reminders: ReminderService;
  /** After-payment actions chosen per link. */
  actions: ActionService;
  /** Sending links to customers; Text-to-Pay. */
  sending: SendingService;
  /** Payment providers per merchant (Settings → Payments). */
  providers: ProviderSettingsService;
  /** Refunds of paid payments. */
  refunds: RefundService;
  /** Outgoing webhooks: endpoints, delivery, the log. */
  webhooks: WebhookService;
  /** One-off payment requests at short signed URLs. */
  requests: RequestService;
  /** Reports → Reconciliation, and payment requests' audit trails. */
  reports: ReportService;
  /** Payment requests from CSV files: checked whole, written in the background. */
  requestImports: RequestImports;
  /** The merchant's pay-page look: logo (stored re-encoded), button style and label. */
  branding: BrandingService;
  /** Recurring plans billed by providers: renewals, cancellation. */
  subscriptions: SubscriptionService;
}

export interface Runtime {
  config: Readonly<Config>;
  db: Db;
  redis: Redis | null;
  clock: Clock;
  log: Logger;
  secrets: Secrets;
  /** Signed recipient (?c=) and payment-request (/r/) tokens. */
  tokens: LinkTokens;
  jobs: JobQueue;
  events: EventBus;
  /** "Something changed" (after commit), in this process and — with Redis — in the others: for caches. */
  changes: ChangeFeed;
  scheduler: Scheduler;
  /** Live dashboard signals (views, payments), relayed across processes through Redis. */
  live: LiveFeed;
  /** Queues pay-page views and writes them in batches; null when recording is switched off (benchmarks). */
  views: ViewRecorder | null;
  registries: Registries;
  plugins: PluginHost;
  services: Services;
  sessionStore: session.Store;
  loginLimiter: LoginLimiter;
  /** "Forgot your password?" requests: per IP and per email. */
  resetLimiter: ResetLimiter;
  /** Requests per API key. */
  apiLimiter: Limiter;
  /** Checkout attempts on public pay pages: per client IP, and per payment request; receipt emails a customer asks for, per payment. */
  checkoutLimiter: { perIp: Limiter; perRequest: Limiter; receiptEmails: Limiter };
  eta: Eta;
  /** Starts the job worker and the cron sweeps (server only; tests drain jobs by hand). */
  startBackground(): void;
  /** Stops background work, waits for running jobs, closes Redis and the database. */
  close(): Promise<void>;
}

export interface RuntimeOptions {
  clock?: Clock;
  log?: Logger;
  /** Replaces the default plugin sources (built-ins + PAYLINK_PLUGINS). */
  pluginSources?: PluginSource[];
  migrate?: boolean;
  /** Login throttling; unset counters take their defaults (accounts/rate-limit.ts). */
  loginLimits?: Partial<LoginLimits>;
  /** "Forgot your password?" limits (tests lower them). */
  resetLimits?: Partial<ResetLimits>;
  /** Default: 300 requests per minute per API key. */
  apiLimit?: Limit;
  /** Resends of a delivery. Defaults: 3 per hour per message, 10 per hour per customer (or address). */
  resendLimits?: { perMessage?: Limit; perCustomer?: Limit };
  /**
   * Checkout velocity (abuse controls). Defaults: 30 checkouts per 10 minutes per IP, 10 per hour per
   * payment request, and 5 declined payments in an hour lock a payment request for the rest of it;
   * a customer may have a payment's receipt emailed again 3 times an hour (and those count per IP too).
   */
  checkoutLimits?: { perIp?: Limit; perRequest?: Limit; declines?: Limit; receiptEmails?: Limit };
  jobOptions?: Partial<Omit<JobQueueOptions, 'db' | 'clock' | 'log' | 'onEnqueued'>>;
  /** Record pay-page views (default true; the benchmark measures the page without it). */
  recordViews?: boolean;
  /** How long a view waits before it is written (default 50 ms). */
  viewFlushMs?: number;
  /** Replaces the webhook sender (default: SSRF-guarded HTTP, private addresses per config). */
  webhookSender?: Sender;
}

export async function connectRedis(url: string, log: Logger): Promise<Redis> {
  // Fail fast while disconnected (no offline queue): a request then gets a clear 503 instead of hanging.
  const client = createClient({
    url,
    disableOfflineQueue: true,
    socket: { connectTimeout: 5_000, reconnectStrategy: (retries) => Math.min(retries * 200, 5_000) },
  }) as Redis;
  let lastLogged = 0;
  client.on('error', (err) => {
    // The client reconnects by itself; log at most every 10 s rather than once per retry.
    if (Date.now() - lastLogged > 10_000) {
      lastLogged = Date.now();
      log.error('redis error', { error: err });
    }
  });
  await client.connect();
  return client;
}

export async function createRuntime(config: Readonly<Config>, opts: RuntimeOptions = {}): Promise<Runtime> {
  const log = opts.log ?? createLogger(config.logLevel);
  const clock = opts.clock ?? systemClock;
  // The amount ceilings of this process (PAYLINK_MAX_AMOUNT), read by every amount check.
  configureMaxAmounts(config.maxAmounts);
  const secrets = config.sessionSecret ? secretsFrom(config.sessionSecret) : loadOrCreateSecrets(config.dataDir, null);
  const db = createDb(config.database, { log: log.child('db'), timeouts: config.dbTimeouts });
  const cleanups: (() => Promise<void> | void)[] = [];
  try {
    if (opts.migrate !== false) await migrateLatest(db);
    // SQLite on a file: WAL checkpoints (and their fsync) run on a worker thread, not inside commits.
    if (config.database.client === 'sqlite' && config.database.filename !== ':memory:') {
      const checkpoints = await checkpointInBackground(db, config.database.filename, log.child('db'));
      cleanups.push(() => checkpoints.stop());
    }
    const redis = config.redisUrl ? await connectRedis(config.redisUrl, log.child('redis')) : null;
    if (redis) cleanups.push(() => redis.quit().then(() => {}, () => redis.destroy()));

    // With Redis, other processes hear of new jobs (a nudge wakes idle workers) and of changes
    // (caches drop stale entries) through pub/sub on one subscriber connection.
    const nudgeChannel = `${config.redisPrefix}:jobs:nudge`;
    const changesChannel = `${config.redisPrefix}:changes`;
    const liveChannel = `${config.redisPrefix}:live`;
    const publish = (channel: string, message: string) => () => void redis?.publish(channel, message).catch(() => {});
    const jobs = new JobQueue({ db, clock, log: log.child('jobs'), onEnqueued: redis ? publish(nudgeChannel, '1') : undefined, ...opts.jobOptions });
    const changes = new ChangeFeed();
    const live = new LiveFeed();
    if (redis) {
      const self = randomToken(8);
      live.relayTo((signal) => void redis.publish(liveChannel, JSON.stringify({ from: self, ...signal })).catch(() => {}));
      const announce = publish(changesChannel, self);
      changes.subscribe((origin) => origin === 'local' && announce());
      const sub = redis.duplicate() as Redis;
      sub.on('error', () => {});
      cleanups.unshift(() => sub.quit().then(() => {}, () => sub.destroy()));
      await sub.connect();
      await sub.subscribe(nudgeChannel, () => jobs.nudge());
      await sub.subscribe(changesChannel, (from) => from !== self && changes.notify('remote'));
      await sub.subscribe(liveChannel, (message) => {
        try {
          const { from, ...signal } = JSON.parse(message) as LiveSignal & { from: string };
          if (from !== self && Number.isInteger(signal.merchantKey)) live.deliver(signal);
        } catch {
          // Not ours: ignore.
        }
      });
    }
    const events = new EventBus({ db, clock, jobs, log: log.child('events'), changes, checkPayloads: config.env !== 'production' });
    // Payments and link changes reach open dashboards (views are announced by the recorder).
    events.onCommitted((e) => {
      if (e.merchantKey === null || !/^(payment|checkout|link)\./.test(e.type)) return;
      live.publish({ merchantKey: e.merchantKey, linkId: typeof e.payload.linkId === 'string' ? e.payload.linkId : null, kind: e.type });
    });
    const scheduler = new Scheduler({ db, clock, jobs, log: log.child('scheduler') });
    const registries = createRegistries();
    const tags = createTagService({ db, clock });
    // The links feature's state machine (paid_count, active, counters): checkout, analytics and products use it.
    const linkState = createLinkState({ db, clock, events, changes });
    const products = createProductService({ db, clock, changes, soldByLink: linkState.sellsProduct });
    const coupons = createCouponService({ db, clock, jobs, changes });
    const tokens = new LinkTokens(secrets.derive('link-tokens'));
    const merchants = createMerchantService({ db, clock, events });
    // Analytics' hourly rollups, written by checkout inside its capture and refund transactions.
    const paymentStats = {
      paymentCaptured: countPayment,
      paymentRefunded: countRefund,
    };
    const channels = createChannelDirectory(registries.channels);
    const customers = createCustomerService({ db, clock, tags, addressKinds: () => channels.addressKinds() });
    const profiles = createPaymentProfiles({ db, clock });
    const links = createLinkService({ db, clock, events, tags, products, merchants, customers, baseUrl: config.baseUrl, requestToken: (id) => tokens.request(id), requestPaths: (keys, q) => services.requests.pathsByLinkKeys(keys, q),
      // Late-bound: requests are built on links.
      requests: { linkKeysWhere: (merchantKey, f) => services.requests.linkKeysWhere(merchantKey, f), refsByLinkKeys: (keys) => services.requests.refsByLinkKeys(keys) } });
    const payments = createPaymentQueries({ db, links: linkState, customers, linkKeysMadeBy: (merchantKey, only) => links.linkKeysMadeBy(merchantKey, only) });
    const viewIds = idSealer(secrets.derive('view-ids'), 'vw');
    const providers = createProviderSettingsService({ db, clock, registries, sealer: createSealer(secrets.derive('provider-secrets')), changes });
    const templates = createTemplateService({ db, clock, channels });
    const resendPerMessage = opts.resendLimits?.perMessage ?? { points: 3, durationSec: 3_600 };
    const resendPerCustomer = opts.resendLimits?.perCustomer ?? { points: 10, durationSec: 3_600 };
    const deliveries = createDeliveryService({
      db,
      clock,
      resendLimits: {
        perMessage: createLimiter(redis, config.redisPrefix, 'resend-message', resendPerMessage),
        perCustomer: createLimiter(redis, config.redisPrefix, 'resend-customer', resendPerCustomer),
        limits: { perMessage: resendPerMessage, perCustomer: resendPerCustomer },
      },
      log: log.child('deliveries'),
      jobs,
      events,
      registries,
      channels,
      templates,
      tokens,
      links,
      merchants,
      customers,
      // Late-bound: reminders are built on deliveries; checkout after them.
      planStates: (planKeys) => reminders.statesByKeys(planKeys),
      payments: {
        paymentKeyOf: (paymentId) => services.checkout.paymentKeyOf(paymentId),
        receiptDetails: (keys) => services.checkout.receiptDetails(keys),
      },
      subscriptions: { byIds: (ids) => services.subscriptions.byIds(ids) },
      eta: emailViews(),
      onRecorded: (sent) => {
        for (const key of new Set(sent.map((d) => `${d.merchantKey} ${d.linkId ?? ''}`))) {
          const [merchantKey, linkId] = key.split(' ');
          live.publish({ merchantKey: Number(merchantKey), linkId: linkId || null, kind: 'delivery' });
        }
      },
    });
    const reminders = createReminderService({ db, clock, log: log.child('reminders'), jobs, events, deliveries, merchants, links, customers });
    const actions = createActionService({
      db,
      log: log.child('actions'),
      jobs,
      events,
      registries,
      async context(paymentId) {
        const { payment, session } = (await services.checkout.receipt(paymentId)) ?? {};
        if (!payment) return null;
        const merchant = await merchants.getByKey(payment.merchantKey);
        if (!merchant) return null;
        const link = payment.linkKey === null ? null : await links.getByKey(payment.linkKey);
        // Only the payment's own customer (a signed URL, a request, or the payer matched by email):
        // a link made for one customer is not theirs when someone else pays its public URL.
        const customerKey = payment.customerKey;
        const customer = customerKey === null ? null : await customers.getByKey(customerKey);
        return { merchant: toPluginMerchant(merchant), link: link ? { id: link.id, name: link.name } : null, linkKey: link?.key ?? null, customer: customer && !customer.deletedAt ? actionCustomer(customer) : null, payer: { name: session?.customerName ?? null, email: session?.customerEmail ?? null, phone: session?.collected.phone ?? null } };
      },
    });
    const webhooks = createWebhookService({
      db,
      clock,
      log: log.child('webhooks'),
      jobs,
      events,
      sealer: createSealer(secrets.derive('webhook-secrets')),
      merchants,
      // Late-bound: refunds are built with the services below.
      data: createDataBuilder({
        payments,
        refunds: { list: (key) => services.refunds.list(key) },
        links,
        actions,
        deliveries,
        reminders,
        requests: { get: (merchantKey, id) => services.requests.get(merchantKey, id), json: (r) => services.requests.json(r) },
        apiKeys: { refsByKeys: (keys) => services.apiKeys.refsByKeys(keys) },
        subscriptions: { getView: (merchantKey, id) => services.subscriptions.getView(merchantKey, id) },
      }),
      send: opts.webhookSender ?? createSender({ allowPrivate: config.webhooksAllowPrivate === true }),
      allowHttp: config.env !== 'production' || config.webhooksAllowPrivate === true,
      allowPrivate: config.webhooksAllowPrivate === true,
      notifyMerchant: (trx, notice) => deliveries.notifyMerchant(trx, notice),
      baseUrl: config.baseUrl,
      changes,
    });
    const declines = opts.checkoutLimits?.declines ?? { points: 5, durationSec: 3_600 };
    const requests = createRequestService({
      db, clock, events, baseUrl: config.baseUrl, tokens, links, linkState, customers, deliveries, reminders,
      declines: { limiter: createLimiter(redis, config.redisPrefix, 'request-declines', declines), threshold: declines.points },
    });
    const subscriptions = createSubscriptionService({
      db,
      clock,
      events,
      registries,
      settingsFor: (merchantKey, providerId) => providers.settingsFor(merchantKey, providerId),
      // Late-bound: checkout is built below, in the services object.
      renewals: { recordRenewal: (trx, r) => services.checkout.recordRenewal(trx, r), renewalPaymentOf: (q, id, ref) => services.checkout.renewalPaymentOf(q, id, ref) },
      refs: {
        merchantIdOf: merchants.publicIdOf,
        customerIdOf: customers.publicIdOf,
        linkIdOf: linkState.publicIdOf,
        linkKeyOf: (linkId) => linkState.keyOf(linkId),
        linksByKeys: linkState.refsByKeys,
        customersByKeys: (keys) => customers.summariesByKeys(keys),
      },
    });
    const services: Services = {
      subscriptions,
      requests,
      // Late-bound: refunds and analytics are built below, in this object.
      reports: createReportService({
        clock,
        requests,
        payments,
        refunds: { forPayments: (keys) => services.refunds.forPayments(keys) },
        analytics: { viewsForLinks: (keys, perLink) => services.analytics.viewsForLinks(keys, perLink) },
        deliveries,
        apiKeys: { refsByKeys: (keys) => services.apiKeys.refsByKeys(keys) },
        merchants,
        customers,
      }),
      requestImports: createRequestImports({ db, clock, jobs, log: log.child('request-imports'), requests, deliveries, merchants }),
      webhooks,
      merchants,
      branding: createBrandingService({ db, clock, merchants }),
      accounts: createAccountService({ db, clock, key: secrets.derive('account-tokens'), baseUrl: config.baseUrl, merchants, notifyMerchant: (trx, notice) => deliveries.notifyMerchant(trx, notice) }),
      apiKeys: createApiKeyService({ db, clock, events }),
      tags,
      products,
      coupons,
      links,
      checkout: createCheckoutService({
        db,
        clock,
        events,
        jobs,
        registries,
        log: log.child('checkout'),
        baseUrl: config.baseUrl,
        receiptKeys: receiptKeys(secrets.derive('receipt-keys')),
        providers,
        onPaid: async (trx, paid) => {
          if (paid.linkKey !== null) await reminders.stopForPayment(trx, paid.linkKey, paid.customerKey);
        },
        customers: { matchOrCreate: customers.matchOrCreate, recordContact: customers.recordContact },
        links: linkState,
        products,
        refs: { merchantIdOf: merchants.publicIdOf, customerIdOf: customers.publicIdOf },
        stats: paymentStats,
        profiles,
        coupons,
        subscriptions,
      }),
      customers,
      profiles,
      savedProfiles: createSavedProfiles({ profiles, registries, providers, merchants, log: log.child('profiles') }),
      payments,
      analytics: createAnalytics({ db, clock, log: log.child('analytics'), payments, viewIds, links: linkState, merchants }),
      templates,
      deliveries,
      reminders,
      actions,
      sending: createSendingService({ db, clock, registries, customers, tags, links, deliveries, reminders, actions, requests }),
      providers,
      refunds: createRefundService({ db, clock, events, jobs, registries, log: log.child('refunds'), providers, merchantIdOf: async (key) => (await merchants.getByKey(key))?.id ?? null, links: linkState, stats: paymentStats }),
    };
    const providerReports = createProviderReports({
      db,
      clock,
      events,
      links: linkState,
      refs: { merchantIdOf: merchants.publicIdOf, customerIdOf: customers.publicIdOf },
      // A vendor session that ended unpaid gives back the slot its immediate-capture checkout held.
      onExpired: async (trx, payment) => {
        if (payment.linkKey !== null && payment.sessionKey !== null) await linkState.releaseHold(trx, payment.linkKey, payment.sessionKey);
        // …and the coupon redemption it held.
        if (payment.sessionKey !== null) await coupons.release(trx, payment.sessionKey);
      },
    });
    const views = opts.recordViews === false ? null : new ViewRecorder({ db, clock, log: log.child('views'), live, events, viewIds, links: linkState, flushMs: opts.viewFlushMs });

    const knexStore = redis ? null : new KnexSessionStore(db, clock);
    const sessionStore: session.Store = new DeadlineStore(redis ? new RedisStore({ client: redis, prefix: `${config.redisPrefix}:sess:` }) : knexStore!);

    jobs.define('maintenance.prune', async () => {
      await jobs.prune(7 * 86_400_000);
      await jobs.prune(30 * 86_400_000, 'dead'); // dead jobs stay a month for diagnosis
      if (knexStore) await knexStore.sweep();
    });
    jobs.define('idempotency.prune', async () => {
      await pruneIdempotencyKeys(db, clock);
    });
    jobs.define('analytics.prune_views', async () => {
      await services.analytics.pruneViews();
    });
    jobs.define('links.expire', async () => {
      while ((await links.expireDue()) > 0);
    });
    jobs.define('links.release_holds', async () => {
      while ((await linkState.releaseLapsedHolds()) > 0);
    });

    const plugins = new PluginHost({
      db,
      clock,
      jobs,
      log,
      events,
      registries,
      baseUrl: config.baseUrl,
      settings: config.pluginSettings,
      defaults: {
        'channel-email': config.smtpUrl ? { smtpUrl: config.smtpUrl, from: config.mailFrom ?? undefined } : {},
        // Only the variables that are set: a plugin's zod schema sees absent keys, not nulls.
        'channel-vonage': Object.fromEntries(Object.entries(config.vonage).filter(([, v]) => v !== null)),
      },
      getMerchant: async (id) => {
        const m = await services.merchants.get(id);
        return m ? toPluginMerchant(m) : null;
      },
      merchantKeys: { keyOf: merchants.keyOf, publicIdsOf: merchants.publicIdsOf },
      checkout: (pluginId) =>
        createPluginCheckoutServices({
          checkout: services.checkout,
          reports: providerReports,
          refunds: services.refunds,
          links,
          merchants: services.merchants,
          baseUrl: config.baseUrl,
          pluginId,
          ownerOf: (id) => registries.providers.ownerOf(id),
          providerIds: () => registries.providers.list().map((p) => p.id),
          settingsFor: (merchantKey, providerId) => providers.settingsFor(merchantKey, providerId),
          profiles: services.profiles,
          subscriptions,
        }),
      customers: () => createPluginCustomerServices({ merchants, customers, tags }),
      subscriptions: (pluginId) =>
        createPluginSubscriptionServices({ subscriptions, pluginId, ownerOf: (id) => registries.providers.ownerOf(id), providerIds: () => registries.providers.list().map((p) => p.id) }),
    });
    const sources = opts.pluginSources ?? [...builtinSources(BUILTIN_PLUGINS_DIR), ...config.plugins.map((p) => externalSource(p))];
    await plugins.load(sources);

    const eta = new Eta({ views: VIEWS_DIR, cache: config.env !== 'development', autoEscape: true, autoTrim: [false, 'nl'] });
    let started = false;

    return {
      config,
      db,
      redis,
      clock,
      log,
      secrets,
      tokens,
      jobs,
      events,
      changes,
      scheduler,
      live,
      views,
      registries,
      plugins,
      services,
      sessionStore,
      loginLimiter: createLoginLimiter(redis, config.redisPrefix, opts.loginLimits),
      resetLimiter: createResetLimiter(redis, config.redisPrefix, opts.resetLimits),
      apiLimiter: createLimiter(redis, config.redisPrefix, 'api', opts.apiLimit ?? { points: 300, durationSec: 60 }),
      checkoutLimiter: {
        perIp: createLimiter(redis, config.redisPrefix, 'checkout-ip', opts.checkoutLimits?.perIp ?? { points: 30, durationSec: 600 }),
        perRequest: createLimiter(redis, config.redisPrefix, 'checkout-request', opts.checkoutLimits?.perRequest ?? { points: 10, durationSec: 3_600 }),
        receiptEmails: createLimiter(redis, config.redisPrefix, 'receipt-email', opts.checkoutLimits?.receiptEmails ?? { points: 3, durationSec: 3_600 }),
      },
      eta,
      startBackground() {
        if (started) return;
        started = true;
        jobs.start();
        scheduler.start([
          { cron: '17 3 * * *', kind: 'maintenance.prune' },
          { cron: '41 * * * *', kind: 'idempotency.prune' },
          { cron: '23 4 * * *', kind: 'analytics.prune_views' },
          // Due reminders are queued within a minute; the sweep also restarts stalled deliveries.
          { cron: '* * * * *', kind: 'reminders.sweep' },
          // Payment requests past their expiry close (link.expired) within a minute.
          { cron: '* * * * *', kind: 'links.expire' },
          // Slots held by immediate-capture checkouts past their end free up within a minute.
          { cron: '* * * * *', kind: 'links.release_holds' },
          // Coupon redemptions held by checkouts that ended unpaid free up within a minute.
          { cron: '* * * * *', kind: 'coupons.release_holds' },
          // Plugins' periodic work (api.schedule.every), e.g. provider-stripe's sweep of stale sessions.
          ...plugins.sweeps,
        ]);
      },
      async close() {
        live.endStreams();
        // Queued views are written before anything closes: none is lost on a graceful shutdown.
        await views?.close().catch((err) => log.error('could not write queued views on shutdown', { error: err, queued: views.queued }));
        await scheduler.stop();
        await jobs.stop();
        knexStore?.close();
        for (const c of cleanups) await c();
        await db.destroy();
      },
    };
  } catch (err) {
    for (const c of cleanups) await Promise.resolve(c()).catch(() => {});
    await db.destroy().catch(() => {});
    throw err;
  }
}
