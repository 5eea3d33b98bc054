// JSON API: /customers (name, email, phone in E.164, address, tags).
import type express from 'express';
import type { Runtime } from '../../runtime.ts';
import { customerJson } from '../customers/service.ts';
import { crudRoutes } from './common.ts';

export function apiCustomerRoutes(rt: Runtime): express.Router {
  const { customers } = rt.services;
  return crudRoutes({ path: 'customers', object: 'customer', service: customers, list: (key, q) => customers.list(key, q), toJson: customerJson });
}
