/**
 * Errors are values with a stable `code`. One error middleware turns them into a page, a fragment
 * or problem+json. Never branch on message text.
 */
export interface FieldError {
  field: string;
  code: string;
  message: string;
}

export class AppError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    /** Safe to show to the person who made the request. */
    readonly userMessage: string,
    readonly options: {
      cause?: unknown;
      errors?: FieldError[];
      help?: string;
      headers?: Record<string, string>;
      /** More members of the problem+json body, e.g. the id of the existing object a 409 conflicts with. */
      extra?: Record<string, string | number | boolean | null>;
    } = {},
  ) {
    super(userMessage, { cause: options.cause });
    this.name = new.target.name;
  }
  get errors(): FieldError[] {
    return this.options.errors ?? [];
  }
}

export class NotFoundError extends AppError {
  constructor(what = 'The page or resource you asked for does not exist.') {
    super('not_found', 404, what);
  }
}

export class ValidationError extends AppError {
  constructor(errors: FieldError[], message = 'Some fields need your attention.') {
    super('validation_failed', 422, message, { errors });
  }
  /** Messages keyed by field, as forms show them next to their inputs. */
  byField(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const e of this.errors) out[e.field] ??= e.message;
    return out;
  }
}

export class ConflictError extends AppError {
  constructor(code: string, message: string, errors: FieldError[] = []) {
    super(code, 409, message, { errors });
  }
}

export class RateLimitedError extends AppError {
  constructor(message: string, retryAfterSeconds: number) {
    super('rate_limited', 429, message, { headers: { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterSeconds))) } });
  }
}

export class ServiceUnavailableError extends AppError {
  constructor(message = 'Paylink is temporarily unavailable. Please try again in a moment.', cause?: unknown) {
    super('service_unavailable', 503, message, { cause });
  }
}

/** Turns a zod error into field errors: `{ field: 'handle', code: 'too_small', message }`. */
export function fieldErrorsFromZod(issues: { path: PropertyKey[]; code: string; message: string }[]): FieldError[] {
  return issues.map((i) => ({ field: i.path.map(String).join('.') || '_', code: i.code, message: i.message }));
}
