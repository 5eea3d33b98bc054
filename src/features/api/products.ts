// JSON API: /products (name, description, price in minor units, currency).
import type express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import { productJson } from '../products/index.ts';
import { crudRoutes } from './common.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'products'>;

export function apiProductRoutes(rt: Deps): express.Router {
  const { products } = rt;
  return crudRoutes({ path: 'products', object: 'product', service: products, list: (key, q) => products.list(key, q), toJson: productJson });
}
