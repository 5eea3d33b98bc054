import express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import { flash, type Renderer } from '../../core/http.ts';
import { ValidationError } from '../../core/errors.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'accounts' | 'merchants'>;

/**
 * Settings → Sign-in: change the password or the email, each behind the current password. Either
 * change gives the user a new password fingerprint, so every other session ends; this browser is
 * signed in again on a fresh session.
 */
export function accountSettingsRoutes(rt: Deps, render: Renderer): express.Router {
  const router = express.Router();
  const forms = {
    password: { title: 'Change your password', view: 'settings/password', done: 'Your password has been changed. You stay signed in here and were signed out everywhere else.' },
    email: { title: 'Change your sign-in email', view: 'settings/email', done: 'Your sign-in email has been changed. You stay signed in here and were signed out everywhere else.' },
  } as const;

  for (const [kind, form] of Object.entries(forms) as [keyof typeof forms, (typeof forms)[keyof typeof forms]][]) {
    const page = (req: express.Request, res: express.Response, extra: Record<string, unknown> = {}, status = 200) =>
      render(req, res, form.view, { title: form.title, errors: {}, values: { email: '' }, ...extra }, status);
    router.get(`/settings/${kind}`, (req, res) => {
      res.set('Cache-Control', 'no-store');
      return page(req, res);
    });
    router.post(`/settings/${kind}`, async (req, res) => {
      res.set('Cache-Control', 'no-store');
      const body = req.body as Record<string, unknown>;
      try {
        const user = kind === 'password' ? await rt.accounts.changePassword(req.user!.user, body) : await rt.accounts.changeEmail(req.user!.user, body);
        const merchant = (await rt.merchants.getByKey(user.merchantKey))!;
        await new Promise<void>((resolve, reject) => req.login({ user, merchant }, (err) => (err ? reject(err) : resolve())));
        flash(req, 'success', form.done);
        res.redirect(303, '/app/settings#sign-in');
      } catch (err) {
        if (!(err instanceof ValidationError)) throw err;
        await page(req, res, { errors: err.byField(), values: { email: typeof body.email === 'string' ? body.email : '' } }, 422);
      }
    });
  }
  return router;
}
