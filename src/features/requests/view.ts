/** What the dashboard shows of payment requests: status badges, the list's query string, the form's values. */
import { one, type Badge } from '../../web/view.ts';
import type { PaymentRequest, RequestStatus } from './service.ts';

export const STATUSES: readonly { value: RequestStatus; label: string }[] = [
  { value: 'pending', label: 'Pending' },
  { value: 'paid', label: 'Paid' },
  { value: 'expired', label: 'Expired' },
  { value: 'cancelled', label: 'Cancelled' },
];

const BADGES: Record<RequestStatus, Badge> = {
  pending: { label: 'Pending', tone: 'amber' },
  paid: { label: 'Paid', tone: 'green' },
  expired: { label: 'Expired', tone: 'grey' },
  cancelled: { label: 'Cancelled', tone: 'red' },
};

export function statusBadge(status: RequestStatus): Badge {
  return BADGES[status];
}

/** Only a request that can still be paid, or has lapsed unpaid, can be cancelled. */
export const cancellable = (r: Pick<PaymentRequest, 'status'>): boolean => r.status === 'pending' || r.status === 'expired';

/** What a request is called on the dashboard: its description, else its reference, else its amount's link name. */
export const titleOf = (r: PaymentRequest): string => r.link.description || (r.reference ? `Request ${r.reference}` : r.link.name);

export const PER_PAGE = 25;

/** The list's query string: a status filter, a CSV import's requests only, and the id to continue after (`starting_after`). */
export interface ListQuery {
  status: RequestStatus | '';
  import: string;
  after: string;
}

export function readListQuery(query: Record<string, unknown>): ListQuery {
  const status = one(query.status);
  const after = one(query.after);
  const imp = one(query.import);
  return {
    status: STATUSES.some((s) => s.value === status) ? (status as RequestStatus) : '',
    import: /^rqi_[0-9A-Za-z]{1,40}$/.test(imp) ? imp : '',
    after: /^req_[0-9A-Za-z]{1,40}$/.test(after) ? after : '',
  };
}

/** `/app/requests?…` for this query with some parts changed; defaults are left out. */
export function listHref(q: ListQuery, change: Partial<ListQuery> = {}): string {
  const v = { ...q, ...change };
  const p = new URLSearchParams();
  if (v.status) p.set('status', v.status);
  if (v.import) p.set('import', v.import);
  if (v.after) p.set('after', v.after);
  const s = p.toString();
  return s ? `/app/requests?${s}` : '/app/requests';
}

/** The new-request form as typed: strings, so a 422 gives back exactly what was written. */
export interface RequestFormValues {
  amount: string;
  currency: string;
  description: string;
  reference: string;
  /** A customer of the merchant's, chosen on their page (`?customer=`); else the typed contact below. */
  customer_id: string;
  customer_name: string;
  customer_email: string;
  customer_phone: string;
  expires_days: string;
  max_uses: string;
  /** "on" when the customer may ask for a new link once it expired. */
  allow_refresh: string;
  /** Sent at once on these channels (ids), to the contact above. */
  channels: string[];
  /** Reminders until paid: a frequency (empty: none) and how many at most. */
  reminder_frequency: string;
  reminder_max: string;
  /** Seconds before the expiry a last reminder goes (empty: none); one of NOTICE_OPTIONS. */
  notify_before: string;
}

/** The last-reminder choices the form offers (seconds before the expiry). */
export const NOTICE_OPTIONS: readonly { value: string; label: string }[] = [
  { value: '', label: 'No last reminder' },
  { value: '3600', label: '1 hour before it expires' },
  { value: '86400', label: '1 day before it expires' },
  { value: '259200', label: '3 days before it expires' },
];

export const DEFAULT_EXPIRY_DAYS = 7;
export const MAX_EXPIRY_DAYS = 365;
export const MAX_USES = 10_000;

export const newValues = (currency: string, customerId = ''): RequestFormValues => ({
  amount: '',
  currency,
  description: '',
  reference: '',
  customer_id: customerId,
  customer_name: '',
  customer_email: '',
  customer_phone: '',
  expires_days: String(DEFAULT_EXPIRY_DAYS),
  max_uses: '1',
  allow_refresh: 'on',
  channels: [],
  reminder_frequency: '',
  reminder_max: '3',
  notify_before: '',
});

const text = (v: unknown): string => (typeof v === 'string' ? v : '');

export const postedValues = (body: Record<string, unknown>): RequestFormValues => ({
  amount: text(body.amount),
  currency: text(body.currency).trim().toUpperCase(),
  description: text(body.description),
  reference: text(body.reference),
  customer_id: text(body.customer_id).trim(),
  customer_name: text(body.customer_name),
  customer_email: text(body.customer_email),
  customer_phone: text(body.customer_phone),
  expires_days: text(body.expires_days),
  max_uses: text(body.max_uses),
  allow_refresh: text(body.allow_refresh) === 'on' ? 'on' : '',
  channels: [body.channels].flat().filter((c): c is string => typeof c === 'string' && c.length > 0 && c.length <= 64).slice(0, 10),
  reminder_frequency: text(body.reminder_frequency),
  reminder_max: text(body.reminder_max),
  notify_before: text(body.notify_before),
});

/** The service's field names (the API's) → the form's. */
const FORM_FIELDS: Record<string, string> = {
  'customer.name': 'customer_name',
  'customer.email': 'customer_email',
  'customer.phone': 'customer_phone',
  'customer.country': 'customer_phone',
  expires_in: 'expires_days',
  expires_at: 'expires_days',
  reminders: 'reminder_frequency',
  'reminders.frequency': 'reminder_frequency',
  'reminders.max': 'reminder_max',
  notify_before_expiry: 'notify_before',
};

export const formField = (field: string): string => FORM_FIELDS[field] ?? field;
