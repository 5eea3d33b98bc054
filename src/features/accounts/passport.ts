import type { Passport as PassportClass } from 'passport';
type Passport = InstanceType<typeof PassportClass>;
import { Strategy as LocalStrategy } from 'passport-local';
import type { AppDeps } from '../../web/deps.ts';
import { verifyPassword } from '../../core/passwords.ts';
import { sha256Hex } from '../../core/ids.ts';
import type { Merchant, User } from '../merchants/index.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'merchants'>;

declare global {
  namespace Express {
    interface User {
      user: import('../merchants/index.ts').User;
      merchant: import('../merchants/index.ts').Merchant;
    }
  }
}

/** What the session stores: the user id and a fingerprint of the password hash (a reset signs out everywhere). */
interface SessionUser {
  id: string;
  pw: string;
}

const fingerprint = (user: User) => sha256Hex(user.passwordHash).slice(0, 16);

export function configurePassport(passport: Passport, rt: Deps): void {
  const { merchants } = rt;
  passport.use(
    new LocalStrategy({ usernameField: 'email', passwordField: 'password' }, (email, password, done) => {
      (async () => {
        const user = await merchants.getUserByEmail(email);
        const ok = await verifyPassword(user?.passwordHash ?? null, password);
        if (!user || !ok) return done(null, false);
        const merchant = (await merchants.getByKey(user.merchantKey)) as Merchant;
        return done(null, { user, merchant });
      })().catch(done);
    }),
  );
  passport.serializeUser((u: Express.User, done) => done(null, { id: u.user.id, pw: fingerprint(u.user) } satisfies SessionUser));
  passport.deserializeUser((stored: SessionUser, done) => {
    (async () => {
      const user = stored?.id ? await merchants.getUser(stored.id) : null;
      if (!user || fingerprint(user) !== stored.pw) return done(null, false);
      const merchant = await merchants.getByKey(user.merchantKey);
      return done(null, merchant ? { user, merchant } : false);
    })().catch(done);
  });
}
