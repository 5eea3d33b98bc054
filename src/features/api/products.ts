// JSON API: /products (name, description, price in minor units, currency).
import type express from 'express';
import type { Runtime } from '../../runtime.ts';
import { productJson } from '../products/index.ts';
import { crudRoutes } from './common.ts';

export function apiProductRoutes(rt: Runtime): express.Router {
  const { products } = rt.services;
  return crudRoutes({ path: 'products', object: 'product', service: products, list: (key, q) => products.list(key, q), toJson: productJson });
}
