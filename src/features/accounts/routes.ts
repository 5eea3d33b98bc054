import express from 'express';
import type { Passport as PassportClass } from 'passport';
type Passport = InstanceType<typeof PassportClass>;
import type { AppDeps } from '../../web/deps.ts';
import { flash, type Renderer } from '../../core/http.ts';
import { AppError, RateLimitedError, ValidationError } from '../../core/errors.ts';
import { safeNext } from './middleware.ts';
import { TokenError } from './service.ts';
import { ROLE_HELP, ROLE_LABELS } from '../../core/access.ts';
import { limitKey } from '../../core/ip.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'config' | 'loginLimiter' | 'resetLimiter' | 'merchants' | 'accounts'>;

const CLOSED_TEXT = 'Sign-up is closed on this Paylink. Accounts are created by its administrator; ask them for one.';
const INVITE_TEXT = 'Sign-up on this Paylink needs an invitation. Ask its administrator for an invitation link, then open it.';

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
      signupOpen: rt.config.signup === 'open',
    });
  });

  router.post('/login', async (req, res, next) => {
    const email = typeof req.body.email === 'string' ? req.body.email.trim().slice(0, 254) : '';
    const target = safeNext(req.body.next);
    const ip = limitKey(req.ip);
    const page = (status: number, error: string) => render(req, res, 'accounts/login', { title: 'Log in', values: { email }, next: target, error, signupOpen: rt.config.signup === 'open' }, status);
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

  const policy = rt.config.signup;
  /**
   * Who may sign up here: anyone (open, or the first account of a fresh install), the holder of a
   * valid invitation (invite: its email), or nobody (a 403 page saying so).
   */
  const gate = async (req: express.Request, res: express.Response, token: unknown): Promise<{ invite: string | null; email: string | null } | null> => {
    if (await rt.accounts.signUpWithoutInvitation(policy)) return { invite: null, email: null };
    const refuse = async (message: string) => {
      await render(req, res, 'accounts/signup_closed', { title: 'Sign-up is closed', message }, 403);
      return null;
    };
    if (policy === 'closed') return refuse(CLOSED_TEXT);
    if (typeof token !== 'string' || !token) return refuse(INVITE_TEXT);
    try {
      const { email } = await rt.accounts.invitation(token);
      return { invite: token, email };
    } catch (err) {
      if (!(err instanceof TokenError)) throw err;
      return refuse(`${err.userMessage} Sign-up on this Paylink needs a valid invitation: ask its administrator for a new link.`);
    }
  };

  router.get('/signup', async (req, res) => {
    if (req.user) return res.redirect(303, '/app');
    const allowed = await gate(req, res, req.query.invite);
    if (!allowed) return;
    await render(req, res, 'accounts/signup', { title: 'Create your Paylink account', values: { email: allowed.email ?? '' }, errors: {}, invite: allowed.invite, invitedEmail: allowed.email });
  });

  router.post('/signup', async (req, res) => {
    const allowed = await gate(req, res, req.body.invite);
    if (!allowed) return;
    const values = { name: req.body.name ?? '', handle: req.body.handle ?? '', email: allowed.email ?? req.body.email ?? '' };
    try {
      const { merchant, user } = allowed.invite
        ? await rt.accounts.signUpInvited(allowed.invite, req.body)
        : await merchants.signUp(req.body, {
            // Not open: only the very first account may sign up here, even when two race for it.
            guard: policy === 'open' ? undefined : async (trx) => {
              if (await merchants.hasAccounts(trx)) throw new AppError('signup_closed', 403, policy === 'closed' ? CLOSED_TEXT : INVITE_TEXT);
            },
          });
      await logIn(req, { merchant, user });
      await merchants.recordLogin(user);
      flash(req, 'success', `Welcome to Paylink, ${merchant.name}! Your page is live at ${rt.config.baseUrl}/${merchant.handle}.`);
      res.redirect(303, '/app');
    } catch (err) {
      if (err instanceof TokenError || (err instanceof AppError && err.code === 'signup_closed')) {
        return render(req, res, 'accounts/signup_closed', { title: 'Sign-up is closed', message: err.userMessage }, 403);
      }
      if (!(err instanceof ValidationError)) throw err;
      await render(req, res, 'accounts/signup', { title: 'Create your Paylink account', values, errors: err.byField(), invite: allowed.invite, invitedEmail: allowed.email }, 422);
    }
  });

  // Forgot your password? The same answer for every address, known or not; limited per IP and per email.
  const forgotPage = (req: express.Request, res: express.Response, extra: Record<string, unknown> = {}, status = 200) =>
    render(req, res, 'accounts/forgot', { title: 'Reset your password', values: { email: '' }, sent: false, error: null, ...extra }, status);

  router.get('/password/forgot', async (req, res) => {
    if (req.user) return res.redirect(303, '/app/settings/password');
    res.set('Cache-Control', 'no-store');
    await forgotPage(req, res, { expired: req.query.expired === '1' });
  });

  router.post('/password/forgot', async (req, res) => {
    res.set('Cache-Control', 'no-store');
    const email = typeof req.body.email === 'string' ? req.body.email.trim().slice(0, 254) : '';
    if (!email) return forgotPage(req, res, { error: 'Enter the email address you sign in with.' }, 422);
    try {
      await rt.resetLimiter.attempt(limitKey(req.ip), email);
    } catch (err) {
      if (!(err instanceof RateLimitedError)) throw err;
      res.setHeader('Retry-After', err.options.headers!['Retry-After']);
      return forgotPage(req, res, { values: { email }, error: err.userMessage }, 429);
    }
    await rt.accounts.requestPasswordReset(email);
    await forgotPage(req, res, { sent: true, values: { email } });
  });

  const invalidLink = (req: express.Request, res: express.Response, err: TokenError) =>
    render(req, res, 'accounts/reset_invalid', { title: 'This link cannot be used', message: err.userMessage, problem: err.problem }, 410);

  router.get('/password/reset/:token', async (req, res) => {
    // The token is in the URL: never cached, never sent on as a Referer.
    res.set({ 'Cache-Control': 'no-store', 'Referrer-Policy': 'no-referrer' });
    try {
      await rt.accounts.checkResetToken(req.params.token);
    } catch (err) {
      if (!(err instanceof TokenError)) throw err;
      return invalidLink(req, res, err);
    }
    await render(req, res, 'accounts/reset', { title: 'Choose a new password', token: req.params.token, errors: {} });
  });

  router.post('/password/reset/:token', async (req, res) => {
    res.set({ 'Cache-Control': 'no-store', 'Referrer-Policy': 'no-referrer' });
    try {
      const user = await rt.accounts.resetPassword(req.params.token, req.body);
      const merchant = await merchants.getByKey(user.merchantKey);
      if (!merchant) throw new TokenError('invalid', 'This password reset link is no longer valid.');
      // Every session of this user ended with the old password; this browser gets a fresh one.
      if (req.user) await new Promise<void>((resolve, reject) => req.logout((e) => (e ? reject(e) : resolve())));
      await logIn(req, { user, merchant });
      await merchants.recordLogin(user);
      flash(req, 'success', 'Your password has been changed. You are signed in, and signed out everywhere else.');
      res.redirect(303, '/app');
    } catch (err) {
      if (err instanceof TokenError) return invalidLink(req, res, err);
      if (!(err instanceof ValidationError)) throw err;
      await render(req, res, 'accounts/reset', { title: 'Choose a new password', token: req.params.token, errors: err.byField() }, 422);
    }
  });

  // Joining a merchant's team from an invitation (Settings → Team): the token is in the address.
  const joinInvalid = (req: express.Request, res: express.Response, err: TokenError) =>
    render(req, res, 'accounts/join_invalid', { title: 'This invitation cannot be used', message: err.userMessage, problem: err.problem }, 410);
  const joinPage = async (req: express.Request, res: express.Response, extra: { values?: { name: string }; errors?: Record<string, string> } = {}, status = 200) => {
    const invite = await rt.accounts.teamInvitation(req.params.token);
    await render(
      req,
      res,
      'accounts/join',
      {
        title: `Join ${invite.merchant.name}`,
        token: req.params.token,
        email: invite.email,
        merchantName: invite.merchant.name,
        roleLabel: ROLE_LABELS[invite.role] ?? invite.role,
        roleHelp: ROLE_HELP[invite.role] ?? '',
        values: extra.values ?? { name: '' },
        errors: extra.errors ?? {},
      },
      status,
    );
  };

  router.get('/signup/join/:token', async (req, res) => {
    res.set({ 'Cache-Control': 'no-store', 'Referrer-Policy': 'no-referrer' });
    try {
      await joinPage(req, res);
    } catch (err) {
      if (!(err instanceof TokenError)) throw err;
      await joinInvalid(req, res, err);
    }
  });

  router.post('/signup/join/:token', async (req, res) => {
    res.set({ 'Cache-Control': 'no-store', 'Referrer-Policy': 'no-referrer' });
    const name = typeof req.body.name === 'string' ? req.body.name.slice(0, 200) : '';
    try {
      const { user, merchant } = await rt.accounts.joinTeam(req.params.token, req.body);
      // Whoever was signed in here before, this browser now belongs to the new member (a fresh session).
      if (req.user) await new Promise<void>((resolve, reject) => req.logout((e) => (e ? reject(e) : resolve())));
      await logIn(req, { user, merchant });
      await merchants.recordLogin(user);
      flash(req, 'success', `Welcome to ${merchant.name}, ${user.name ?? user.email}!`);
      res.redirect(303, '/app');
    } catch (err) {
      if (err instanceof TokenError) return joinInvalid(req, res, err);
      if (!(err instanceof ValidationError)) throw err;
      await joinPage(req, res, { values: { name }, errors: err.byField() }, 422);
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
