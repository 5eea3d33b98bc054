import express from 'express';
import type { Passport as PassportClass } from 'passport';
type Passport = InstanceType<typeof PassportClass>;
import type { AppDeps } from '../../web/deps.ts';
import { flash, type Renderer } from '../../core/http.ts';
import { RateLimitedError, ValidationError } from '../../core/errors.ts';
import { safeNext } from './middleware.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'config' | 'loginLimiter' | 'merchants'>;

export function accountRoutes(rt: Deps, passport: Passport, render: Renderer): express.Router {
  const router = express.Router();
  const { merchants } = rt;

  const logIn = (req: express.Request, u: Express.User) =>
    new Promise<void>((resolve, reject) => req.login(u, (err) => (err ? reject(err) : resolve())));

  router.get('/login', async (req, res) => {
    if (req.user) return res.redirect(303, '/app');
    await render(req, res, 'accounts/login', {
      title: 'Log in',
      values: { email: '' },
      next: safeNext(req.query.next),
      notice: req.query.signed_out ? 'You have been logged out.' : null,
    });
  });

  router.post('/login', async (req, res, next) => {
    const email = typeof req.body.email === 'string' ? req.body.email.trim().slice(0, 254) : '';
    const target = safeNext(req.body.next);
    const ip = req.ip ?? 'unknown';
    const page = (status: number, error: string) => render(req, res, 'accounts/login', { title: 'Log in', values: { email }, next: target, error }, status);
    if (!email || typeof req.body.password !== 'string' || !req.body.password) {
      return page(422, 'Enter your email and password.');
    }
    // The attempt is counted before the password is checked (atomically: parallel guesses cannot
    // slip past a read-then-count); a right password gives the point back.
    try {
      await rt.loginLimiter.attempt(ip, email);
    } catch (err) {
      if (!(err instanceof RateLimitedError)) throw err;
      res.setHeader('Retry-After', err.options.headers!['Retry-After']);
      return page(429, err.userMessage);
    }
    passport.authenticate('local', (err: unknown, result: Express.User | false) => {
      (async () => {
        if (err) throw err;
        if (!result) return page(401, 'That email and password do not match an account.');
        await rt.loginLimiter.succeeded(ip, email);
        await logIn(req, result); // passport regenerates the session here (no fixation)
        await merchants.recordLogin(result.user);
        flash(req, 'success', `Welcome back, ${result.merchant.name}.`);
        res.redirect(303, target);
      })().catch(next);
    })(req, res, next);
  });

  router.get('/signup', async (req, res) => {
    if (req.user) return res.redirect(303, '/app');
    await render(req, res, 'accounts/signup', { title: 'Create your Paylink account', values: {}, errors: {} });
  });

  router.post('/signup', async (req, res) => {
    const values = { name: req.body.name ?? '', handle: req.body.handle ?? '', email: req.body.email ?? '' };
    try {
      const { merchant, user } = await merchants.signUp(req.body);
      await logIn(req, { merchant, user });
      await merchants.recordLogin(user);
      flash(req, 'success', `Welcome to Paylink, ${merchant.name}! Your page is live at ${rt.config.baseUrl}/${merchant.handle}.`);
      res.redirect(303, '/app');
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      await render(req, res, 'accounts/signup', { title: 'Create your Paylink account', values, errors: err.byField() }, 422);
    }
  });

  router.post('/logout', (req, res, next) => {
    req.logout((err) => {
      if (err) return next(err);
      req.session.destroy(() => {
        res.clearCookie(rt.config.secureCookies ? '__Host-paylink' : 'paylink.sid', { path: '/' });
        res.redirect(303, '/login?signed_out=1');
      });
    });
  });

  return router;
}
