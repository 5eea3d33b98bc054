// What subscription-billing providers may do (PluginApi.services.subscriptions): built per plugin and
// scoped to the providers it registered, like checkout's plugin services — another provider's
// subscription is never read or changed (null, or `subscription_not_found`, permanent).
import { ServiceError, type PluginSubscriptionServices } from '../../plugin-api.ts';
import { AppError } from '../../core/errors.ts';
import type { Subscription, SubscriptionService } from './service.ts';

export interface PluginSubscriptionDeps {
  subscriptions: SubscriptionService;
  pluginId: string;
  ownerOf(providerId: string): string | undefined;
  providerIds(): string[];
}

export function createPluginSubscriptionServices(deps: PluginSubscriptionDeps): PluginSubscriptionServices {
  const { subscriptions, pluginId } = deps;
  const ownProviders = () => deps.providerIds().filter((id) => deps.ownerOf(id) === pluginId);
  const mine = (s: Subscription | null): Subscription | null => (s && deps.ownerOf(s.provider) === pluginId ? s : null);
  async function ownSub(id: string): Promise<Subscription> {
    const s = mine(await subscriptions.get(id));
    if (!s) throw new ServiceError('subscription_not_found', 'No such subscription for this provider.');
    return s;
  }
  return Object.freeze({
    async get(id) {
      const s = mine(await subscriptions.get(id));
      return s ? subscriptions.pluginView(s) : null;
    },
    async byRef(ref) {
      const s = await subscriptions.byRef(ownProviders(), ref);
      return s ? subscriptions.pluginView(s) : null;
    },
    async due(opts) {
      const before = opts?.before instanceof Date ? opts.before : new Date(String(opts?.before));
      if (Number.isNaN(before.getTime())) throw new ServiceError('invalid_argument', 'before must be a Date.');
      const limit = Number.isInteger(opts.limit) ? Math.min(Math.max(opts.limit!, 1), 500) : 100;
      return Promise.all((await subscriptions.due(ownProviders(), before, limit)).map((s) => subscriptions.pluginView(s)));
    },
    async renewed(id, renewal) {
      const s = await ownSub(id);
      const invoiceRef = renewal?.invoiceRef;
      if (typeof invoiceRef !== 'string' || !invoiceRef || invoiceRef.length > 150) throw new ServiceError('invalid_invoice_ref', 'invoiceRef must be 1 to 150 characters.');
      if (renewal.amount !== undefined && !(Number.isSafeInteger(renewal.amount) && renewal.amount > 0)) throw new ServiceError('invalid_amount', 'amount must be a positive integer (minor units).');
      if (renewal.periodEnd !== undefined && !(renewal.periodEnd instanceof Date && !Number.isNaN(renewal.periodEnd.getTime()))) throw new ServiceError('invalid_argument', 'periodEnd must be a Date.');
      try {
        return await subscriptions.renewed(s, { invoiceRef, amount: renewal.amount, periodEnd: renewal.periodEnd, paymentMethod: renewal.paymentMethod ?? null });
      } catch (err) {
        if (err instanceof AppError) throw new ServiceError(err.code, err.userMessage, { retryable: err.status >= 500, cause: err });
        throw err;
      }
    },
    async setStatus(id, status) {
      if (status !== 'active' && status !== 'past_due') throw new ServiceError('invalid_status', 'status must be active or past_due.');
      await subscriptions.setStatus(await ownSub(id), status);
    },
    async canceled(id) {
      return subscriptions.markCanceled(await ownSub(id), 'provider');
    },
  } satisfies PluginSubscriptionServices);
}
