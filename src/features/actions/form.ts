/**
 * After-payment actions on the link form (new and edit): every registered action as a row with its
 * label, description and "enable" checkbox, and its `formFragment` rendered through its plugin's
 * views into the slot `link-form.after-payment` with an ActionFormModel. Posted fields are named
 * `actions` (the enabled action ids) and `action.<action id>.<field>` (settings); the form's
 * messages use those names too, so a 422 shows each one under its input. Works as a plain form;
 * htmx re-renders the section when a choice in it (or the customer) changes.
 */
import type { Logger } from '../../core/log.ts';
import { ValidationError } from '../../core/errors.ts';
import type { Registries } from '../../core/plugins/registries.ts';
import type { ActionCustomer, ActionFormModel, AfterPaymentAction, PluginMerchant } from '../../plugin-api.ts';
import type { ActionEntry, ActionService, AfterPaymentPlan, LinkAction } from './service.ts';

type Body = Record<string, unknown>;

/** What the section shows: which actions are ticked and their settings (saved, or as posted). */
export interface ActionFormState {
  enabled: Set<string>;
  settings: Map<string, Record<string, unknown>>;
}

export interface ActionFormRow {
  id: string;
  /** For element ids (`f-action-<slug>`). */
  slug: string;
  label: string;
  description: string;
  enabled: boolean;
  /** Why it cannot be enabled here (disables the checkbox), or null. */
  unavailable: string | null;
  /** The rendered fragment (markup from the plugin's auto-escaping Eta), or null. */
  html: string | null;
  error: string | null;
}

export interface AfterPaymentSection {
  rows: ActionFormRow[];
  /** The link's customer (the edit form carries it for the htmx refresh). */
  customerId: string | null;
  editing: boolean;
}

export interface ActionFormDeps {
  registries: Registries;
  actions: ActionService;
  log: Logger;
  renderView(pluginId: string, name: string, data: Record<string, unknown>): Promise<string>;
}

const slug = (s: string) => s.replace(/[^A-Za-z0-9_-]+/g, '-');
const text = (v: unknown): string => (typeof v === 'string' ? v : Array.isArray(v) ? text(v[v.length - 1]) : '');
const list = (v: unknown): string[] => (Array.isArray(v) ? v : v === undefined ? [] : [v]).filter((x): x is string => typeof x === 'string');

/** The form field name of an action's settings field, and of the action itself (its messages). */
export const actionField = (actionId: string, field?: string) => (field ? `action.${actionId}.${field}` : `action.${actionId}`);

export function createActionForms(deps: ActionFormDeps) {
  const { registries, actions, log } = deps;

  /** The posted fields of one action's fragment, without their `action.<id>.` prefix. */
  const fieldsOf = (body: Body, actionId: string): Record<string, string> => {
    const prefix = `action.${actionId}.`;
    return Object.fromEntries(Object.entries(body).filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), text(v)]));
  };

  /** fromForm (or the fields as they are); a fromForm that throws gives back the fields and the error. */
  const fromForm = (action: AfterPaymentAction<any>, fields: Record<string, string>): { input: unknown; failed: boolean } => {
    if (!action.fromForm) return { input: fields, failed: false };
    try {
      return { input: action.fromForm(fields), failed: false };
    } catch (err) {
      log.error('an action failed to read its form fields', { action: action.id, error: err });
      return { input: fields, failed: true };
    }
  };

  const forms = {
    /** Whether the posted form carried the section (a form without it leaves the actions alone). */
    submitted: (body: Body) => body.after_payment_form === '1',

    /** The section's state from a posted form (or the htmx refresh's query). */
    posted(body: Body): ActionFormState {
      const ticked = new Set(list(body.actions));
      const state: ActionFormState = { enabled: new Set(), settings: new Map() };
      for (const action of registries.actions.list()) {
        if (ticked.has(action.id)) state.enabled.add(action.id);
        const { input } = fromForm(action, fieldsOf(body, action.id));
        state.settings.set(action.id, input && typeof input === 'object' && !Array.isArray(input) ? (input as Record<string, unknown>) : {});
      }
      return state;
    },

    /** The section's state from a link's saved actions. */
    saved(linkActions: LinkAction[]): ActionFormState {
      return { enabled: new Set(linkActions.map((a) => a.actionId)), settings: new Map(linkActions.map((a) => [a.actionId, a.settings])) };
    },

    /**
     * The posted section as a plan: the ticked actions with their settings checked by their schemas
     * (messages under the form's field names), the unticked ones shown on the form removed. An action
     * no longer installed keeps its saved settings: the form did not show it.
     */
    async plan(merchant: PluginMerchant, body: Body): Promise<AfterPaymentPlan> {
      const ticked = new Set(list(body.actions));
      const entries: ActionEntry[] = [];
      const broken: string[] = [];
      for (const action of registries.actions.list()) {
        if (!ticked.has(action.id)) continue;
        const { input, failed } = fromForm(action, fieldsOf(body, action.id));
        if (failed) broken.push(action.id);
        entries.push({ actionId: action.id, settings: input, at: actionField(action.id), setting: (path) => actionField(action.id, path) });
      }
      if (broken.length) {
        throw new ValidationError(broken.map((id) => ({ field: actionField(id), code: 'invalid_settings', message: 'These settings could not be read. Please check them and try again.' })));
      }
      const set = await actions.validate(merchant, entries);
      return { set, remove: registries.actions.list().map((a) => a.id).filter((id) => !ticked.has(id)) };
    },

    /**
     * The section for the form: a row per registered action, its fragment rendered with the state's
     * settings and the form's errors. `editing`: the link exists, so its customer cannot change.
     */
    async section(merchant: PluginMerchant, customer: ActionCustomer | null, state: ActionFormState, errors: Record<string, string>, editing: boolean): Promise<AfterPaymentSection> {
      const rows = await Promise.all(
        registries.actions.list().map(async (action): Promise<ActionFormRow> => {
          const unavailable =
            action.requiresCustomer && !customer
              ? editing
                ? 'Only for a link made for one customer (sent to them when it was created).'
                : 'Choose a customer under “Send to a customer” first.'
              : null;
          const row: ActionFormRow = {
            id: action.id,
            slug: slug(action.id),
            label: action.label,
            description: action.description ?? '',
            enabled: state.enabled.has(action.id) && !unavailable,
            unavailable,
            html: null,
            error: errors[actionField(action.id)] ?? null,
          };
          const owner = registries.actions.ownerOf(action.id);
          if (!action.formFragment || unavailable || !owner) return row;
          const prefix = `action.${action.id}.`;
          const fieldErrors = Object.fromEntries(Object.entries(errors).filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
          try {
            const data = action.formData ? await action.formData({ merchant, customer }) : {};
            const model: ActionFormModel = {
              settings: { ...(state.settings.get(action.id) ?? {}) },
              errors: fieldErrors,
              name: (field: string) => actionField(action.id, field),
              inputId: (field: string) => `f-action-${slug(action.id)}-${slug(field)}`,
              merchant,
              customer,
              data: data && typeof data === 'object' ? data : {},
            };
            row.html = await deps.renderView(owner, action.formFragment, model as unknown as Record<string, unknown>);
          } catch (err) {
            log.error('an action’s form fragment could not be rendered', { action: action.id, plugin: owner, error: err });
            row.html = '<p class="hint">These settings cannot be shown right now.</p>';
          }
          return row;
        }),
      );
      return { rows, customerId: customer?.id ?? null, editing };
    },
  };
  return forms;
}

export type ActionForms = ReturnType<typeof createActionForms>;
