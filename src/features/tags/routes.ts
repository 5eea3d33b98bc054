import express from 'express';
import type { AppDeps } from '../../web/deps.ts';
import { flash, type Renderer } from '../../core/http.ts';
import { ConflictError, NotFoundError, ValidationError } from '../../core/errors.ts';
import { formErrors, tagNamesFrom } from '../../web/view.ts';
import { TAG_PALETTE, type Tag } from './service.ts';

/** What this file uses of the app. */
type Deps = Pick<AppDeps, 'tags'>;

const text = (v: unknown): string => (typeof v === 'string' ? v : '');

/** Dashboard pages for tags (mounted under /app): the Tags page, and tags created from the link form. */
export function tagsRoutes(rt: Deps, render: Renderer): express.Router {
  const router = express.Router();
  const { tags } = rt;

  /** The Tags page; `rowErrors` are keyed by tag id, `newErrors` belong to the create form. */
  const page = async (
    req: express.Request,
    res: express.Response,
    extra: { newValues?: { name: string; color: string }; newErrors?: Record<string, string>; rowValues?: Record<string, { name: string; color: string }>; rowErrors?: Record<string, Record<string, string>> } = {},
    status = 200,
  ) => {
    const list = await tags.list(res.locals.merchant.key, 'link');
    await render(
      req,
      res,
      'tags/index',
      {
        title: 'Tags',
        tags: list,
        newValues: extra.newValues ?? { name: '', color: TAG_PALETTE[list.length % TAG_PALETTE.length] },
        newErrors: extra.newErrors ?? {},
        rowValues: extra.rowValues ?? {},
        rowErrors: extra.rowErrors ?? {},
      },
      status,
    );
  };

  router.get('/tags', (req, res) => page(req, res));

  router.post('/tags', async (req, res) => {
    const body = req.body as Record<string, unknown>;
    try {
      const tag = await tags.create(res.locals.merchant.key, { name: body.name, color: body.color, kind: 'link' });
      flash(req, 'success', `Tag “${tag.name}” created.`);
      res.redirect(303, '/app/tags');
    } catch (err) {
      const errors = formErrors(err);
      if (!errors) throw err;
      await page(req, res, { newValues: { name: text(body.name), color: text(body.color) }, newErrors: errors }, 422);
    }
  });

  /**
   * "Add tag" on the link form (htmx): creates the typed tags at once and answers the tag picker with
   * them ticked, keeping the ticks the merchant already made. Existing names are simply ticked.
   */
  router.post('/tags/picker', async (req, res) => {
    const merchantKey = res.locals.merchant.key;
    const body = req.body as Record<string, unknown>;
    const wanted = tagNamesFrom({ new_tags: body.new_tags });
    const checked = tagNamesFrom({ tags: body.tags });
    let error: string | null = wanted.length ? null : 'Type a name for the new tag.';
    let existing = await tags.list(merchantKey, 'link');
    for (const name of error ? [] : wanted) {
      const found = existing.find((t) => t.name.toLowerCase() === name.trim().toLowerCase());
      if (found) {
        checked.push(found.name);
        continue;
      }
      try {
        const tag = await tags.create(merchantKey, { name, kind: 'link' });
        checked.push(tag.name);
        existing = [...existing, tag];
      } catch (err) {
        // Created meanwhile (another tab): tick it. A bad name: say why, by the field.
        if (err instanceof ConflictError) continue;
        if (!(err instanceof ValidationError)) throw err;
        error = Object.values(err.byField())[0];
        break;
      }
    }
    const linkTags = await tags.list(merchantKey, 'link');
    await render(
      req,
      res,
      'links/_tag_picker',
      { linkTags, checked, newTags: error ? text(body.new_tags) : '', error, autofocus: true },
      error ? 422 : 200,
    );
  });

  /** A link tag of this merchant; customer tags are managed elsewhere and do not exist here. */
  const linkTag = async (req: express.Request, res: express.Response): Promise<Tag> => {
    const tag = await tags.get(res.locals.merchant.key, String(req.params.id));
    if (tag.kind !== 'link') throw new NotFoundError('No such tag.');
    return tag;
  };

  router.post('/tags/:id', async (req, res) => {
    const merchantKey = res.locals.merchant.key;
    const tag = await linkTag(req, res);
    const body = req.body as Record<string, unknown>;
    try {
      const saved = await tags.update(merchantKey, tag.id, { name: body.name, color: body.color });
      flash(req, 'success', saved.name === tag.name ? `Tag “${saved.name}” saved.` : `Tag “${tag.name}” renamed to “${saved.name}”.`);
      res.redirect(303, '/app/tags');
    } catch (err) {
      const errors = formErrors(err);
      if (!errors) throw err;
      await page(req, res, { rowValues: { [tag.id]: { name: text(body.name), color: text(body.color) } }, rowErrors: { [tag.id]: errors } }, 422);
    }
  });


  router.get('/tags/:id/delete', async (req, res) => {
    const tag = await linkTag(req, res);
    await render(req, res, 'tags/delete', { title: `Delete ${tag.name}`, tag });
  });

  router.post('/tags/:id/delete', async (req, res) => {
    const tag = await linkTag(req, res);
    await tags.remove(res.locals.merchant.key, tag.id);
    flash(req, 'success', `Tag “${tag.name}” deleted. Links that had it keep everything else.`);
    res.redirect(303, '/app/tags');
  });

  return router;
}
