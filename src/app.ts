/** buildApp(runtime) → an Express app with no listen(), so tests build one per suite. */
import path from 'node:path';
import { createRequire } from 'node:module';
import express, { type NextFunction, type Request, type Response } from 'express';
import session from 'express-session';
import helmet from 'helmet';
import { Passport } from 'passport';
import { csrfSync } from 'csrf-sync';
import type { Runtime } from './runtime.ts';
import { PUBLIC_DIR } from './runtime.ts';
import { createRenderer, cspNonce, errorHandler, notFound } from './core/http.ts';
import { ServiceUnavailableError } from './core/errors.ts';
import { randomToken } from './core/ids.ts';
import { configurePassport } from './features/accounts/passport.ts';
import { accountRoutes } from './features/accounts/routes.ts';
import { dashboardRoutes } from './features/dashboard/routes.ts';
import { settingsRoutes } from './features/settings/routes.ts';
import { pluginRoutes } from './features/plugins/routes.ts';
import { linksRoutes } from './features/links/routes.ts';
import { productsRoutes } from './features/products/routes.ts';
import { tagsRoutes } from './features/tags/routes.ts';
import { healthRoutes } from './features/health/routes.ts';
import { apiRoutes } from './features/api/routes.ts';
import { publicRoutes } from './features/public/routes.ts';

const HTMX_DIR = path.dirname(createRequire(import.meta.url).resolve('htmx.org/dist/htmx.min.js'));
/** Paths that carry a session (and so CSRF). Public pay pages, health, the API and plugin callbacks never do. */
const WEB_PATH = /^\/(app|login|signup|logout)(\/|$)/;

export function buildApp(rt: Runtime): express.Express {
  const { config } = rt;
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', config.trustProxy);
  app.set('query parser', 'simple');
  const render = createRenderer(rt.eta);

  app.use((req, res, next) => {
    res.locals.requestId = req.get('X-Request-Id')?.slice(0, 64).replace(/[^\w.-]/g, '') || randomToken(12);
    res.setHeader('X-Request-Id', res.locals.requestId);
    res.locals.baseUrl = config.baseUrl;
    res.locals.path = req.path;
    next();
  });
  app.use(cspNonce);
  app.use(
    helmet({
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          defaultSrc: ["'self'"],
          scriptSrc: ["'self'"],
          styleSrc: ["'self'", (_req, res) => `'nonce-${(res as Response).locals.cspNonce}'`],
          imgSrc: ["'self'", 'data:'],
          fontSrc: ["'self'"],
          connectSrc: ["'self'"],
          formAction: ["'self'"],
          frameAncestors: ["'none'"],
          baseUri: ["'self'"],
          objectSrc: ["'none'"],
          ...(config.secureCookies ? { upgradeInsecureRequests: [] } : {}),
        },
      },
      strictTransportSecurity: config.secureCookies ? { maxAge: 31_536_000, includeSubDomains: false } : false,
    }),
  );

  app.use('/static/vendor', express.static(HTMX_DIR, { maxAge: '7d', index: false }));
  app.use('/static', express.static(PUBLIC_DIR, { maxAge: config.env === 'production' ? '1d' : 0, index: false }));
  app.use(healthRoutes(rt));
  app.use('/p', rt.plugins.router);
  app.use('/api/v1', apiRoutes(rt));

  // Dashboard and account pages: session, passport, CSRF. Mounted by path so pay pages never pay for them.
  const passport = new Passport();
  configurePassport(passport, rt);
  const web = express.Router();
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
  web.use(accountRoutes(rt, passport, render));
  web.use('/app', dashboardRoutes(rt, render));
  web.use('/app', linksRoutes(rt, render));
  web.use('/app', productsRoutes(rt, render));
  web.use('/app', tagsRoutes(rt, render));
  web.use('/app', settingsRoutes(rt, render));
  web.use('/app', pluginRoutes(rt, render));
  app.use((req: Request, res: Response, next: NextFunction) => (WEB_PATH.test(req.path) ? web(req, res, next) : next()));

  app.use(publicRoutes(rt, render));
  app.use(notFound);
  app.use(errorHandler(rt.log.child('http'), render));
  return app;
}
