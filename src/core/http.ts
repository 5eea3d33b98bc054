// HTTP helpers shared by features: one way to render, one way to fail.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Eta } from 'eta';
import { z } from 'zod';
import { AppError, NotFoundError, ServiceUnavailableError, ValidationError, fieldErrorsFromZod } from './errors.ts';
import type { Logger } from './log.ts';
import { randomToken } from './ids.ts';
import { addVary, compressedBody } from './compress.ts';

export function isHtmx(req: Request): boolean {
  return req.get('HX-Request') === 'true';
}

/** htmx asked for a fragment (not a boosted navigation, which wants the whole page). */
export function wantsFragment(req: Request): boolean {
  // A history restore (back button after the cache missed) needs the whole page too.
  return isHtmx(req) && req.get('HX-Boosted') !== 'true' && req.get('HX-History-Restore-Request') !== 'true';
}

export function isApiRequest(req: Request): boolean {
  return req.originalUrl.startsWith('/api/');
}

export interface Flash {
  type: 'success' | 'error' | 'info';
  text: string;
  /** A link after the text (e.g. how to configure an email server). */
  help?: { href: string; text: string };
}

export function flash(req: Request, type: Flash['type'], text: string, help?: Flash['help']): void {
  if (!req.session) return;
  const s = req.session as unknown as { flash?: Flash[] };
  s.flash = [...(s.flash ?? []), help ? { type, text, help } : { type, text }];
}

export function takeFlash(req: Request): Flash[] {
  const s = req.session as unknown as { flash?: Flash[] } | undefined;
  if (!s?.flash?.length) return [];
  const out = s.flash;
  delete s.flash;
  return out;
}

export type Renderer = ((req: Request, res: Response, view: string, data?: Record<string, unknown>, status?: number) => Promise<void>) & {
  /** The view's HTML with `data` (and `it.asset`) only: no res.locals, flash or fragment flag (for pages cached whole). */
  html(view: string, data: Record<string, unknown>): string;
};

/**
 * Renders `view` with res.locals and `it.asset(path)` (a static file's content-hashed URL, see
 * core/assets.ts). Views decide full page vs fragment from `it.fragment` (an htmx request that is
 * not a boosted navigation); responses vary on HX-Request.
 */
export function createRenderer(eta: Eta, helpers: { asset: (urlPath: string) => string } = { asset: (p) => p }): Renderer {
  const { asset } = helpers;
  const render = async (req: Request, res: Response, view: string, data: Record<string, unknown> = {}, status = 200) => {
    // Core templates are synchronous; render() skips renderAsync's promise machinery on the hot path.
    const html = eta.render(view, { ...res.locals, asset, ...data, fragment: wantsFragment(req), flash: takeFlash(req) });
    res.status(status).vary('HX-Request').setHeader('Content-Type', 'text/html; charset=utf-8');
    // Compressed when the client asks and the page is over ~1 KB (core/compress.ts).
    if (req.method === 'HEAD') return void res.send(html);
    const body = compressedBody(req, res, html);
    res.send(typeof body === 'string' || Buffer.isBuffer(body) ? body : await body);
  };
  return Object.assign(render, { html: (view: string, data: Record<string, unknown>) => eta.render(view, { asset, ...data }) });
}

/**
 * Sends a page rendered beforehand, as a Renderer sends one (status, `Vary: HX-Request`, the HTML
 * content type, compression when asked and worth it), on any node:http response: an Express one or a
 * plain one (pay pages answered before Express).
 */
export async function sendHtml(req: IncomingMessage, res: ServerResponse, html: string, status = 200): Promise<void> {
  res.statusCode = status;
  addVary(res, 'HX-Request');
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  let body: string | Buffer = html;
  if (req.method !== 'HEAD') {
    const b = compressedBody(req, res, html);
    body = typeof b === 'string' || Buffer.isBuffer(b) ? b : await b;
  }
  res.setHeader('Content-Length', typeof body === 'string' ? Buffer.byteLength(body) : body.length);
  res.end(body);
}

/** Parses with zod or throws a ValidationError carrying a message per field. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  const result = schema.safeParse(body ?? {});
  if (!result.success) throw new ValidationError(fieldErrorsFromZod(result.error.issues));
  return result.data;
}

export function problemJson(res: Response, err: AppError, instance?: string): void {
  for (const [k, v] of Object.entries(err.options.headers ?? {})) res.setHeader(k, v);
  res
    .status(err.status)
    .type('application/problem+json')
    .send(
      JSON.stringify({
        type: `https://paylink.dev/problems/${err.code}`,
        title: err.userMessage,
        status: err.status,
        detail: err.options.help ?? err.userMessage,
        code: err.code,
        errors: err.errors,
        ...err.options.extra,
        ...(instance ? { instance } : {}),
      }),
    );
}

const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN',
  'PROTOCOL_CONNECTION_LOST', 'PROTOCOL_SEQUENCE_TIMEOUT', 'ER_CON_COUNT_ERROR', 'ER_SERVER_SHUTDOWN', 'ER_LOCK_WAIT_TIMEOUT',
  'SQLITE_BUSY', 'SQLITE_LOCKED',
]);

/** A dependency (database, Redis) being unreachable or overloaded: an outage, answered 503. */
export function isUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; name?: string; message?: string } | null;
  if (!e) return false;
  if (typeof e.code === 'string' && UNAVAILABLE_CODES.has(e.code)) return true;
  // knex sets .name; node-redis error classes only carry their class name.
  const names = [e.name, (e as object).constructor?.name];
  return names.some((n) => n === 'KnexTimeoutError' || n === 'TimeoutError' || n === 'ClientClosedError' || n === 'ClientOfflineError' || n === 'SocketClosedUnexpectedlyError' || n === 'ConnectionTimeoutError');
}

/** The disk under the database is full (SQLite's SQLITE_FULL, or ENOSPC from a write): nothing can be saved until space returns. */
export function isStorageFull(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'SQLITE_FULL' || code === 'ENOSPC';
}

/** Maps body-parser and other framework errors onto AppErrors. */
export function toAppError(err: unknown): AppError | null {
  if (err instanceof AppError) return err;
  if (isStorageFull(err)) {
    return new AppError('storage_full', 503, 'Paylink cannot save anything right now: its storage is full. Nothing was changed; please try again later.', { cause: err, headers: { 'Retry-After': '60' } });
  }
  if (isUnavailable(err)) return new ServiceUnavailableError(undefined, err);
  const e = err as { type?: string; status?: number; code?: string; expose?: boolean };
  if (e?.type === 'entity.parse.failed') return new AppError('malformed_json', 400, 'The request body is not valid JSON.');
  if (e?.type === 'entity.too.large') return new AppError('payload_too_large', 413, 'The request body is too large.');
  // The router could not decode a percent-encoded path segment (e.g. /acme/%E0%A4%A).
  if (err instanceof URIError && e.status === 400) return new AppError('malformed_url', 400, 'The address is not valid.');
  if (e?.code === 'EBADCSRFTOKEN' || (e?.status === 403 && /csrf/i.test(String((err as Error).message)))) {
    return new AppError('csrf_failed', 403, 'Your form expired or was sent from another site. Reload the page and try again.');
  }
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500 && e.expose) {
    return new AppError('bad_request', e.status, 'The request could not be understood.');
  }
  return null;
}

/** The single error middleware: page, fragment or problem+json. 5xx bodies stay generic. */
export function errorHandler(log: Logger, render: Renderer) {
  return async (err: unknown, req: Request, res: Response, next: NextFunction): Promise<void> => {
    if (res.headersSent) return next(err);
    let appErr = toAppError(err);
    const requestId = (res.locals.requestId as string) ?? randomToken(10);
    if (!appErr) {
      log.error('unhandled error', { requestId, method: req.method, url: req.originalUrl, error: err });
      appErr = new AppError('internal_error', 500, `Something went wrong on our side. Reference: ${requestId}`);
    } else if (appErr.status >= 500) {
      log.error(appErr.userMessage, { requestId, code: appErr.code, error: appErr.options.cause ?? appErr });
    }
    if (isApiRequest(req)) return problemJson(res, appErr, requestId);
    for (const [k, v] of Object.entries(appErr.options.headers ?? {})) res.setHeader(k, v);
    const view = appErr.status === 404 ? 'errors/404' : 'errors/error';
    try {
      await render(req, res, view, { error: appErr, requestId, title: appErr.status === 404 ? 'Page not found' : 'Something went wrong' }, appErr.status);
    } catch (renderErr) {
      log.error('error page failed to render', { requestId, error: renderErr });
      res.status(appErr.status).type('text').send(appErr.userMessage);
    }
  };
}

export const notFound: RequestHandler = () => {
  throw new NotFoundError();
};
