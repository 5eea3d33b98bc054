/** buildApp(runtime) → an Express app with no listen(), so tests build one per suite. */
import path from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { randomBytes, randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import session from 'express-session';
import helmet from 'helmet';
import { Passport } from 'passport';
import { csrfSync } from 'csrf-sync';
import type { Runtime } from './runtime.ts';
import { PUBLIC_DIR } from './runtime.ts';
import { createRenderer, errorHandler, notFound } from './core/http.ts';
import { createAssets } from './core/assets.ts';
import { ServiceUnavailableError } from './core/errors.ts';
import { configurePassport } from './features/accounts/index.ts';
import { accountRoutes, accountSettingsRoutes, teamRoutes } from './features/accounts/index.ts';
import { dashboardRoutes } from './features/dashboard/index.ts';
import { settingsRoutes } from './features/settings/index.ts';
import { webhookRoutes } from './features/webhooks/index.ts';
import { templatesRoutes } from './features/deliveries/index.ts';
import { pluginRoutes } from './features/plugins/index.ts';
import { linksRoutes } from './features/links/index.ts';
import { sendingRoutes } from './features/sending/index.ts';
import { productsRoutes } from './features/products/index.ts';
import { couponsRoutes } from './features/coupons/index.ts';
import { subscriptionsRoutes } from './features/subscriptions/index.ts';
import { customersRoutes } from './features/customers/index.ts';
import { tagsRoutes } from './features/tags/index.ts';
import { dashboardQrRoutes } from './features/qr/index.ts';
import { healthRoutes } from './features/health/index.ts';
import { apiRoutes } from './features/api/index.ts';
import { linkPreviewRoutes, publicRoutes, type DirectPayPageApp } from './features/public/index.ts';
import { LOGO_MAX_BYTES, brandingAssetRoutes, multipartBody } from './features/branding/index.ts';
import { analyticsRoutes } from './features/analytics/index.ts';
import { transactionsRoutes } from './features/transactions/index.ts';
import { requestsRoutes } from './features/requests/index.ts';
import { reportsRoutes } from './features/reports/index.ts';
import { RESERVED_HANDLES } from './features/merchants/index.ts';
import { dashboardShell } from './web/shell.ts';
import { appDeps } from './web/deps.ts';
import { answerFirst, foregroundStarted } from './core/pace.ts';

const HTMX_DIR = path.dirname(createRequire(import.meta.url).resolve('htmx.org/dist/htmx.min.js'));
const HTMX_SSE_DIR = path.dirname(createRequire(import.meta.url).resolve('htmx-ext-sse/dist/sse.min.js'));
/** Paths that carry a session (and so CSRF). Public pay pages, health, the API and plugin callbacks never do. */
const WEB_PATH = /^\/(app|login|signup|logout|password)(\/|$)/;

export function buildApp(rt: Runtime): express.Express {
  const { config } = rt;
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', config.trustProxy);
  app.set('query parser', 'simple');
  app.set('etag', false); // pages are no-store; static files carry their own validators
  // CSS and JS under content-hashed URLs (views write them with it.asset), brotli/gzip compressed.
  const assets = createAssets({
    roots: [
      { prefix: '/static/vendor/htmx-ext-sse', dir: HTMX_SSE_DIR },
      { prefix: '/static/vendor', dir: HTMX_DIR },
      { prefix: '/static', dir: PUBLIC_DIR },
    ],
    watch: config.env === 'development',
    shortMaxAge: config.env === 'development' ? 0 : 300,
  });
  const render = createRenderer(rt.eta, { asset: assets.url });
  // Routers take the parts they use (a Pick of these), not the whole runtime.
  const deps = appDeps(rt);

  // Every response: a request id, a CSP nonce for the one brand <style>, and security headers.
  // The CSP is assembled from precomputed parts around the nonce: this runs on every pay page. A pay
  // page widens `form-action` with exactly its merchant's providers' checkout origins
  // (`res.locals.allowFormAction`).
  const cspHead = [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'nonce-",
  ].join('; ');
  const cspTail = [
    "'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
  ].join('; ');
  // form-action last but for the fixed rest: a pay page adds its providers' checkout origins here.
  const cspRest = [
    "frame-ancestors 'none'",
    "base-uri 'self'",
    "object-src 'none'",
    ...(config.secureCookies ? ['upgrade-insecure-requests'] : []),
  ].join('; ');
  // helmet decides the security headers; they are static, so they are taken from it once at boot
  // and set with one loop per request instead of a dozen middleware calls (pay pages are the hot path).
  const securityHeaders = headersOf(
    helmet({
      contentSecurityPolicy: false, // set below, with the nonce
      strictTransportSecurity: config.secureCookies ? { maxAge: 31_536_000, includeSubDomains: false } : false,
    }),
  );
  const cspFixed = `${cspTail}; form-action 'self'; ${cspRest}`;
  const cspOf = (nonce: string, formOrigins: readonly string[]) =>
    formOrigins.length ? `${cspHead}${nonce}${cspTail}; form-action 'self' ${formOrigins.join(' ')}; ${cspRest}` : cspHead + nonce + cspFixed;
  const nonces = noncePool();
  const requestIdOf = (req: IncomingMessage) => {
    const given = req.headers['x-request-id'];
    return (typeof given === 'string' && given.slice(0, 64).replace(/[^\w.-]/g, '')) || randomUUID();
  };
  app.use((req, res, next) => {
    // Jobs in this process wait while requests are unanswered (core/pace.ts).
    answerFirst(res);
    res.locals.requestId = requestIdOf(req);
    res.setHeader('X-Request-Id', res.locals.requestId);
    res.locals.baseUrl = config.baseUrl;
    res.locals.path = req.path;
    const nonce = nonces();
    res.locals.cspNonce = nonce;
    res.setHeader('Content-Security-Policy', cspOf(nonce, []));
    // Only origins as URL.origin spells them (no spaces, quotes or semicolons can reach the header).
    res.locals.allowFormAction = (origins: readonly string[]) => res.setHeader('Content-Security-Policy', cspOf(nonce, origins));
    for (const [name, value] of securityHeaders) res.setHeader(name, value);
    next();
  });

  // Pay pages first: a request whose first segment is not one of the app's own (all reserved as
  // handles) goes straight to the public router instead of walking every other mount.
  const { router: publicRouter, fastPayPage, directPayPage } = publicRoutes(deps, render);
  app.use((req: Request, res: Response, next: NextFunction) => {
    const end = req.path.indexOf('/', 1);
    const first = req.path.slice(1, end < 0 ? undefined : end).toLowerCase();
    if (!first || RESERVED_HANDLES.has(first)) return next();
    fastPayPage(req, res, (err?: unknown) => (err ? next(err) : publicRouter(req, res, next)));
  });

  app.use('/static', (req, res, next) => assets.handler(req, res, next));
  // What the asset handler leaves (images, fonts): plain files with a short cache.
  app.use('/static/vendor/htmx-ext-sse', express.static(HTMX_SSE_DIR, { maxAge: '7d', index: false }));
  app.use('/static/vendor', express.static(HTMX_DIR, { maxAge: '7d', index: false }));
  app.use('/static', express.static(PUBLIC_DIR, { maxAge: config.env === 'production' ? '1d' : 0, index: false }));
  // Logos and brand colours: content-addressed, public, cached for good.
  app.use(brandingAssetRoutes(deps));
  app.use(healthRoutes(deps));
  app.use('/p', rt.plugins.router);
  app.use('/api/v1', apiRoutes(deps));

  // Dashboard and account pages: session, passport, CSRF. Mounted by path so pay pages never pay for them.
  const passport = new Passport();
  configurePassport(passport, deps);
  const web = express.Router();
  // Signed-in pages carry personal data: no copy may stay in a browser or proxy cache after logout.
  // Pages, htmx fragments and CSV exports alike (a route may still choose otherwise, e.g. QR images).
  web.use((_req, res, next) => {
    res.setHeader('Cache-Control', 'no-store');
    next();
  });
  const sessionMiddleware = session({
      name: config.secureCookies ? '__Host-paylink' : 'paylink.sid',
      secret: rt.secrets.sessionSecret,
      store: rt.sessionStore,
      resave: false,
      saveUninitialized: false,
      rolling: true,
      proxy: config.trustProxy ? true : undefined,
      cookie: { httpOnly: true, sameSite: 'lax', secure: config.secureCookies, path: '/', maxAge: 7 * 86_400_000 },
    });
  // A session store error (Redis or the database unreachable) is an outage, not a bug: 503.
  web.use((req, res, next) => sessionMiddleware(req, res, (err?: unknown) => next(err ? new ServiceUnavailableError(undefined, err) : undefined)));
  // express-session carries on without req.session when its store is down: answer 503, never skip CSRF.
  web.use((req, _res, next) => next(req.session ? undefined : new ServiceUnavailableError()));
  // The customer import posts a whole CSV file as form text (up to 2 MB, which percent-encoding can
  // triple); only a signed-in session may send that much.
  // The payment request import likewise, up to 4 MB of CSV.
  const importBody = express.urlencoded({ extended: false, limit: '7mb' });
  const requestImportBody = express.urlencoded({ extended: false, limit: '13mb' });
  const signedIn = (req: Request) => Boolean((req.session as { passport?: { user?: unknown } } | undefined)?.passport?.user);
  web.use('/app/customers/import', (req, res, next) => (signedIn(req) ? importBody(req, res, next) : next()));
  web.use('/app/requests/import', (req, res, next) => (signedIn(req) ? requestImportBody(req, res, next) : next()));
  // Settings → Payment page uploads a logo (multipart, one file up to 1 MB), read before CSRF checks its token.
  const logoBody = multipartBody({ maxFileBytes: LOGO_MAX_BYTES });
  web.use('/app/settings/branding', (req, res, next) => (signedIn(req) ? logoBody(req, res, next) : next()));
  web.use(express.urlencoded({ extended: false, limit: '100kb' }));
  web.use(passport.session());
  const csrf = csrfSync({
    size: 32,
    getTokenFromRequest: (req) => (req.get('X-CSRF-Token') ?? (req.body as Record<string, string> | undefined)?._csrf) || undefined,
  });
  web.use(csrf.csrfSynchronisedProtection);
  web.use((req, res, next) => {
    res.locals.csrfToken = csrf.generateToken(req);
    res.locals.user = req.user ?? null;
    next();
  });
  web.use(accountRoutes(deps, passport, render));
  // Every dashboard page: a signed-in merchant (else the login page) and the navigation, once for all sections.
  web.use(
    '/app',
    dashboardShell(deps),
    dashboardRoutes(deps, render),
    sendingRoutes(deps, render), // sending from a link's page: the Send panel, resend, stop reminders, the live cards
    linkPreviewRoutes(deps, render), // the link form's live preview (before /links/:id)
    linksRoutes(deps, render),
    requestsRoutes(deps, render),
    analyticsRoutes(deps, render),
    transactionsRoutes(deps, render),
    reportsRoutes(deps, render),
    dashboardQrRoutes(deps),
    productsRoutes(deps, render),
    couponsRoutes(deps, render),
    subscriptionsRoutes(deps, render),
    customersRoutes(deps, render),
    tagsRoutes(deps, render),
    settingsRoutes(deps, render),
    accountSettingsRoutes(deps, render),
    teamRoutes(deps, render),
    webhookRoutes(deps, render),
    templatesRoutes(deps, render),
    pluginRoutes(deps, render),
  );
  app.use((req: Request, res: Response, next: NextFunction) => (WEB_PATH.test(req.path) ? web(req, res, next) : next()));

  app.use(publicRouter);
  app.use(notFound);
  app.use(errorHandler(rt.log.child('http'), render));

  // Plain pay-page GETs (the hot path) are answered before Express sets up its request and response
  // (prototypes, router, finalhandler: on Node 20 that cost more than the page). Whatever the direct
  // path declines — or fails at — Express answers as above, from the start. It sends the same headers
  // as the first middleware above, as one list for a single writeHead (setting ~16 headers one by one
  // cost more than the rest of the page).
  const securityList = securityHeaders.flat();
  const direct: DirectPayPageApp = {
    headers(req, formOrigins) {
      const nonce = nonces();
      return { nonce, headers: ['X-Request-Id', requestIdOf(req), 'Content-Security-Policy', cspOf(nonce, formOrigins), ...securityList] };
    },
    // Without a trusted proxy, Express's req.ip is the socket's address.
    ipOf: config.trustProxy === false ? (req) => req.socket.remoteAddress : clientAddress(app),
  };
  const handle = (app as unknown as { handle: AppHandle }).handle.bind(app);
  (app as unknown as { handle: AppHandle }).handle = (req, res, callback) => {
    // Mounted in another app (a callback given) or not a read: Express all the way.
    if (callback || (req.method !== 'GET' && req.method !== 'HEAD')) return handle(req, res, callback);
    // Unanswered while the direct path looks the page up (core/pace.ts); Express counts its own.
    const answered = foregroundStarted();
    directPayPage(req, res, direct).then(
      (done) => {
        answered();
        if (!done) handle(req, res);
      },
      (err) => {
        answered();
        if (res.headersSent) res.destroy(err as Error);
        else handle(req, res);
      },
    );
  };
  return app;
}

type AppHandle = (req: IncomingMessage, res: ServerResponse, callback?: (err?: unknown) => void) => void;

/** The client address as Express's `req.ip` gives it (the app's `trust proxy` setting), for a request Express has not wrapped. */
function clientAddress(app: express.Express): (req: IncomingMessage) => string | undefined {
  return (req) => {
    const wrapped = Object.create(app.request) as Request;
    Object.assign(wrapped, { headers: req.headers, socket: req.socket });
    return wrapped.ip;
  };
}

/** The headers a static header-setting middleware (helmet) sets, captured once. */
function headersOf(middleware: RequestHandler): [string, string][] {
  const headers: [string, string][] = [];
  const res = { setHeader: (name: string, value: unknown) => headers.push([name, String(value)]), removeHeader: () => {} };
  middleware({} as Request, res as unknown as Response, () => {});
  return headers;
}

/** CSP nonces (128 bits each) cut from a buffer of CSPRNG bytes refilled every 256 requests. */
function noncePool(): () => string {
  let pool = Buffer.alloc(0);
  let at = 0;
  return () => {
    if (at + 16 > pool.length) {
      pool = randomBytes(16 * 256);
      at = 0;
    }
    at += 16;
    return pool.toString('base64', at - 16, at);
  };
}
