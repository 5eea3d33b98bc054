import express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import { flash, type Renderer } from '../../core/http.ts';
import { AppError, ValidationError } from '../../core/errors.ts';
import { ROLES, ROLE_HELP, ROLE_LABELS, can, type Role } from '../../core/access.ts';
import { toDecimalString } from '../../core/money.ts';
import { dateTimeIn } from '../../web/view.ts';
import { capText, memberName, type Merchant, type User } from '../merchants/index.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'accounts' | 'merchants'>;

const text = (v: unknown) => (typeof v === 'string' ? v : '');

/**
 * Settings → Team (owners and admins; the gate in core/access.ts): the members with their roles,
 * caps and last sign-in; invitations by email (a single-use link, 7 days) with resend and revoke;
 * changing a member's role or cap, removing a member. Only owners touch owners.
 */
export function teamRoutes(rt: Deps, render: Renderer): express.Router {
  const router = express.Router();
  const { accounts, merchants } = rt;

  router.use('/settings/team', (_req, res, next) => {
    // A fresh invitation link is shown in one answer only: never cached.
    res.set('Cache-Control', 'no-store');
    next();
  });

  const page = async (
    req: express.Request,
    res: express.Response,
    extra: {
      invite?: { values: Record<string, string>; errors: Record<string, string> };
      member?: { id: string; values: Record<string, string>; errors: Record<string, string> };
      newInvite?: { email: string; url: string };
    } = {},
    status = 200,
  ) => {
    const merchant: Merchant = res.locals.merchant;
    const me: User = req.user!.user;
    const [members, invites] = await Promise.all([merchants.members(merchant.key), accounts.pendingInvites(merchant.key)]);
    const inviters = await merchants.userRefsByKeys(invites.flatMap((i) => (i.invitedBy === null ? [] : [i.invitedBy])));
    const ownsOwners = can(me.role, 'owners.manage');
    const owners = members.filter((m) => m.role === 'owner').length;
    // Only an owner offers (or may change) the owner role.
    const roles = ROLES.filter((r) => r !== 'owner' || ownsOwners).map((value) => ({ value, label: ROLE_LABELS[value], help: ROLE_HELP[value] }));
    await render(
      req,
      res,
      'settings/team',
      {
        title: 'Team',
        roles,
        allRoles: ROLES.map((value) => ({ value, label: ROLE_LABELS[value], help: ROLE_HELP[value] })),
        currency: merchant.currency,
        invite: extra.invite ?? { values: { email: '', role: 'agent', amount_cap: '' }, errors: {} },
        newInvite: extra.newInvite ?? null,
        members: members.map((m) => {
          const editing = extra.member?.id === m.id ? extra.member : null;
          return {
            id: m.id,
            name: memberName(m),
            email: m.email,
            hasName: Boolean(m.name),
            role: m.role as Role,
            roleLabel: ROLE_LABELS[m.role as Role] ?? m.role,
            cap: m.role === 'agent' ? capText(m.amountCap, merchant.currency) : '—',
            lastLogin: m.lastLoginAt ? dateTimeIn(m.lastLoginAt, merchant.timezone) : 'Never',
            me: m.key === me.key,
            // An admin sees owners but cannot change them; the last owner cannot be demoted or removed.
            editable: m.role !== 'owner' || ownsOwners,
            removable: (m.role !== 'owner' || ownsOwners) && !(m.role === 'owner' && owners <= 1),
            lastOwner: m.role === 'owner' && owners <= 1,
            values: editing && Object.keys(editing.values).length ? editing.values : { role: m.role, amount_cap: m.amountCap === null ? '' : toDecimalString(m.amountCap, merchant.currency) },
            errors: editing?.errors ?? {},
          };
        }),
        invites: invites.map((i) => ({
          ...i,
          roleLabel: ROLE_LABELS[i.role] ?? i.role,
          cap: i.role === 'agent' ? capText(i.amountCap, merchant.currency) : '—',
          expires: dateTimeIn(i.expiresAt, merchant.timezone),
          by: i.invitedBy === null ? null : (() => {
            const u = inviters.get(i.invitedBy);
            return u ? u.name || u.email : null;
          })(),
          manageable: i.role !== 'owner' || ownsOwners,
        })),
      },
      status,
    );
  };

  router.get('/settings/team', (req, res) => page(req, res));

  router.post('/settings/team/invites', async (req, res) => {
    const body = req.body as Record<string, unknown>;
    const values = { email: text(body.email), role: text(body.role), amount_cap: text(body.amount_cap) };
    try {
      const invite = await accounts.inviteMember(res.locals.merchant, req.user!.user, body);
      flash(req, 'success', `Invitation sent to ${invite.email} as ${ROLE_LABELS[invite.role].toLowerCase()}. It works once, for 7 days.`);
      // The link is shown here once too (email may not be set up); a reload lands on the plain page.
      await page(req, res, { newInvite: { email: invite.email, url: invite.url } }, 201);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      await page(req, res, { invite: { values, errors: err.byField() } }, 422);
    }
  });
  // Reloading the page an invitation was made on lands here: the team page, never a second invitation.
  router.get('/settings/team/invites', (_req, res) => res.redirect(303, '/app/settings/team'));

  const inviteKey = (req: express.Request) => {
    const n = Number(req.params.id);
    return Number.isSafeInteger(n) && n > 0 ? n : 0;
  };

  router.post('/settings/team/invites/:id/resend', async (req, res) => {
    const invite = await accounts.resendInvite(res.locals.merchant, req.user!.user, inviteKey(req));
    flash(req, 'success', `A new invitation went to ${invite.email}; the earlier link no longer works.`);
    await page(req, res, { newInvite: { email: invite.email, url: invite.url } }, 201);
  });

  router.post('/settings/team/invites/:id/revoke', async (req, res) => {
    const invite = await accounts.revokeInvite(res.locals.merchant, req.user!.user, inviteKey(req));
    flash(req, 'success', `Invitation to ${invite.email} revoked: its link no longer works.`);
    res.redirect(303, '/app/settings/team#invites');
  });

  router.post('/settings/team/members/:id', async (req, res) => {
    const id = String(req.params.id);
    const body = req.body as Record<string, unknown>;
    const values = { role: text(body.role), amount_cap: text(body.amount_cap) };
    try {
      const member = await merchants.changeMember(req.user!.user, res.locals.merchant, id, body);
      flash(req, 'success', `${memberName(member)} is now ${ROLE_LABELS[member.role as Role].toLowerCase()}${member.role === 'agent' ? ` (${capText(member.amountCap, res.locals.merchant.currency).toLowerCase()})` : ''}.`);
      res.redirect(303, `/app/settings/team#member-${id}`);
    } catch (err) {
      if (err instanceof ValidationError) return page(req, res, { member: { id, values, errors: err.byField() } }, 422);
      if (err instanceof AppError && err.code === 'last_owner') return page(req, res, { member: { id, values, errors: { role: err.userMessage } } }, 409);
      throw err;
    }
  });

  router.post('/settings/team/members/:id/remove', async (req, res) => {
    const id = String(req.params.id);
    try {
      const member = await merchants.removeMember(req.user!.user, res.locals.merchant, id);
      flash(req, 'success', `${memberName(member)} was removed from the team. What they created stays, under their name.`);
      // Removing yourself ends your access: the next page is the login page.
      res.redirect(303, member.key === req.user!.user.key ? '/login' : '/app/settings/team');
    } catch (err) {
      if (err instanceof AppError && err.code === 'last_owner') return page(req, res, { member: { id, values: {}, errors: { remove: err.userMessage } } }, 409);
      throw err;
    }
  });

  return router;
}
