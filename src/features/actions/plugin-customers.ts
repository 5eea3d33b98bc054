// What action plugins may do with customers (PluginApi.services.customers): capabilities over the
// customer and tag services, addressed by public ids and always scoped to the merchant.
import type { ActionCustomer, PluginCustomerServices } from '../../plugin-api.ts';
import { NotFoundError } from '../../core/errors.ts';
import type { MerchantService } from '../merchants/index.ts';
import type { CustomerService, Customer } from '../customers/index.ts';
import type { TagService } from '../tags/index.ts';

export function actionCustomer(c: Customer): ActionCustomer {
  return { id: c.id, name: c.name, email: c.email, phone: c.phone, tags: c.tags.map((t) => ({ id: t.id, name: t.name })) };
}

export function createPluginCustomerServices(deps: { merchants: MerchantService; customers: CustomerService; tags: TagService }): PluginCustomerServices {
  const { merchants, customers, tags } = deps;
  const merchantKey = async (merchantId: string) => {
    const m = await merchants.get(merchantId);
    if (!m) throw new NotFoundError('No such merchant.');
    return m.key;
  };
  return Object.freeze({
    async get(merchantId: string, customerId: string) {
      const key = await merchantKey(merchantId);
      const c = await customers.get(key, customerId).catch((err) => (err instanceof NotFoundError ? null : Promise.reject(err)));
      return c ? actionCustomer(c) : null;
    },
    async tags(merchantId: string) {
      return (await tags.list(await merchantKey(merchantId), 'customer')).map((t) => ({ id: t.id, name: t.name, color: t.color }));
    },
    async applyTag(merchantId: string, customerId: string, tagId: string) {
      return customers.applyTag(await merchantKey(merchantId), customerId, tagId);
    },
    async removeTag(merchantId: string, customerId: string, tagId: string) {
      return customers.removeTag(await merchantKey(merchantId), customerId, tagId);
    },
  });
}
