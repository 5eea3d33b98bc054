/**
 * The merchant's pay-page look: logo (stored here, in brand_logos), button style and label (saved on
 * the merchant through the merchants feature). A save is all or nothing: a bad logo, style or label
 * is a 422 by its field and nothing is written; a new logo and the merchant's pointer to it commit
 * together, and the merchant's other (now unused) logos go in the same transaction.
 */
import type { Db } from '../../core/db.ts';
import type { Clock } from '../../core/clock.ts';
import { ValidationError, type FieldError } from '../../core/errors.ts';
import { fieldErrorsFromZod } from '../../core/errors.ts';
import type { Merchant, MerchantService } from '../merchants/index.ts';
import { processLogo, type ProcessedLogo } from './logo.ts';
import { merchantBrandingSchema } from './schemas.ts';

export const logoPath = (sha256: string) => `/assets/logos/${sha256}.webp`;

export interface BrandingServiceDeps {
  db: Db;
  clock: Clock;
  merchants: Pick<MerchantService, 'updateBranding'>;
}

/** What Settings → Payment page posts: the look, and optionally a new logo (or removing it). */
export interface LookInput {
  button_style?: unknown;
  button_label?: unknown;
  remove_logo?: boolean;
  logo?: { bytes: Buffer; truncated: boolean } | null;
}

export function createBrandingService({ db, clock, merchants }: BrandingServiceDeps) {
  return {
    /** Validates everything first (all field errors at once), then writes in one transaction. */
    async saveLook(merchant: Merchant, input: LookInput): Promise<Merchant> {
      const errors: FieldError[] = [];
      const look = merchantBrandingSchema.safeParse({ button_style: input.button_style ?? merchant.buttonStyle, button_label: input.button_label ?? merchant.buttonLabel });
      if (!look.success) errors.push(...fieldErrorsFromZod(look.error.issues));
      let logo: ProcessedLogo | null = null;
      if (input.logo) {
        try {
          logo = await processLogo(input.logo.bytes, { truncated: input.logo.truncated });
        } catch (err) {
          if (!(err instanceof ValidationError)) throw err;
          errors.push(...err.errors);
        }
      }
      if (errors.length || !look.success) throw new ValidationError(errors);
      const logoUrl = logo ? logoPath(logo.sha256) : input.remove_logo ? null : undefined;
      return merchants.updateBranding(merchant, { ...look.data, logo_url: logoUrl }, async (trx) => {
        if (logoUrl === undefined) return;
        // The merchant's other logos are no longer shown anywhere (links inherit or show none).
        await trx('brand_logos').where({ merchant_id: merchant.key }).modify((q) => (logo ? q.whereNot({ sha256: logo.sha256 }) : q)).del();
        if (logo && !(await trx('brand_logos').where({ merchant_id: merchant.key, sha256: logo.sha256 }).first('id'))) {
          await trx('brand_logos').insert({ merchant_id: merchant.key, sha256: logo.sha256, content_type: logo.contentType, width: logo.width, height: logo.height, bytes: logo.bytes, created_at: clock.now() });
        }
      });
    },

    /** A stored logo's bytes by their hash (any merchant's: logos are public, addressed by content). */
    async logo(sha256: string): Promise<{ bytes: Buffer; contentType: string } | null> {
      const r = await db('brand_logos').where({ sha256 }).first('bytes', 'content_type');
      return r ? { bytes: Buffer.from(r.bytes), contentType: String(r.content_type) } : null;
    },
  };
}

export type BrandingService = ReturnType<typeof createBrandingService>;
