// JSON API: /tags (name, color #rrggbb, kind link | customer).
import type express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import { tagJson } from '../tags/index.ts';
import { crudRoutes } from './common.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'tags'>;

export function apiTagRoutes(rt: Deps): express.Router {
  const { tags } = rt;
  return crudRoutes({ path: 'tags', object: 'tag', service: tags, list: (key, q) => tags.page(key, q), toJson: tagJson });
}
