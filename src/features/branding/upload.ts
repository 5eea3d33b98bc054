/**
 * A multipart/form-data body with at most one file, for the logo upload: the fields go to
 * `req.body` (so CSRF and the route read them as usual) and the file to `req.upload`. The file is
 * read up to `maxFileBytes` + 1, so an oversize file is known as such without holding more of it.
 * A body that is not multipart is left alone; a broken one ends as a 400.
 */
import type { Request, RequestHandler } from 'express';
import { Busboy } from '@fastify/busboy';
import { AppError } from '../../core/errors.ts';

export interface Upload {
  field: string;
  filename: string;
  bytes: Buffer;
  /** Over the limit: only the first bytes were kept. */
  truncated: boolean;
}

export const uploadOf = (req: Request): Upload | null => ((req as Request & { upload?: Upload | null }).upload ?? null);

export function multipartBody(opts: { maxFileBytes: number; fields?: number }): RequestHandler {
  return (req, _res, next) => {
    if (!req.is('multipart/form-data') || req.method !== 'POST') return next();
    const fields: Record<string, string> = {};
    let upload: Upload | null = null;
    let done = false;
    const finish = (err?: unknown) => {
      if (done) return;
      done = true;
      if (err) return next(err);
      req.body = fields;
      (req as Request & { upload?: Upload | null }).upload = upload;
      next();
    };
    let bb;
    try {
      bb = new Busboy({ headers: req.headers as never, limits: { files: 1, fileSize: opts.maxFileBytes + 1, fields: opts.fields ?? 20, fieldSize: 4096, parts: (opts.fields ?? 20) + 1 } });
    } catch (err) {
      return finish(new AppError('bad_request', 400, 'The form could not be read. Reload the page and try again.', { cause: err }));
    }
    bb.on('field', (name: string, value: string) => {
      if (!(name in fields)) fields[name] = value;
    });
    const broken = (err: unknown) => {
      req.unpipe(bb);
      req.resume();
      finish(new AppError('bad_request', 400, 'The form could not be read. Reload the page and try again.', { cause: err }));
    };
    bb.on('file', (field: string, stream, filename: string) => {
      // A body cut short ends the file's stream with an error: unhandled, it would end the process.
      stream.on('error', broken);
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= opts.maxFileBytes + 1) chunks.push(c);
      });
      stream.on('end', () => {
        // No file chosen: browsers send an empty part with no name.
        if (!filename && size === 0) return;
        upload = { field, filename, bytes: Buffer.concat(chunks), truncated: stream.truncated || size > opts.maxFileBytes };
      });
    });
    bb.on('error', broken);
    bb.on('finish', () => finish());
    req.pipe(bb);
  };
}
