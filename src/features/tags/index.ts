// The tags feature's front door: what other features and the app may use of it.
export { tagsRoutes } from './routes.ts';
export { createTagService, tagJson, tagNameSchema, tagRef } from './service.ts';
export type { Tag, TagKind, TagService } from './service.ts';
