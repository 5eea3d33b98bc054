/** What the dashboard shows of customers: the list's query string. */
import { one, pageParam } from '../../web/view.ts';

/** The list's query string as typed. */
export interface ListQuery {
  q: string;
  tag: string;
  page: number;
}

export function readListQuery(query: Record<string, unknown>): ListQuery {
  return { q: one(query.q).trim().slice(0, 120), tag: one(query.tag).trim().slice(0, 60), page: pageParam(query.page) };
}

/** `/app/customers?…` for this query with some parts changed; defaults are left out. */
export function listHref(q: ListQuery, change: Partial<ListQuery> = {}): string {
  const v = { ...q, ...change };
  const p = new URLSearchParams();
  if (v.q) p.set('q', v.q);
  if (v.tag) p.set('tag', v.tag);
  if (v.page > 1) p.set('page', String(v.page));
  // %20 rather than "+" for spaces, as the links list writes them.
  const s = p.toString().replace(/\+/g, '%20');
  return s ? `/app/customers?${s}` : '/app/customers';
}
