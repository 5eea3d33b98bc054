// JSON API: /tags (name, color #rrggbb, kind link | customer).
import type express from 'express';
import type { Runtime } from '../../runtime.ts';
import { tagJson } from '../tags/index.ts';
import { crudRoutes } from './common.ts';

export function apiTagRoutes(rt: Runtime): express.Router {
  const { tags } = rt.services;
  return crudRoutes({ path: 'tags', object: 'tag', service: tags, list: (key, q) => tags.page(key, q), toJson: tagJson });
}
