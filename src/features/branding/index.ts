// The branding feature's front door: a merchant's pay-page look (logo, colour, button) and a link's overrides.
export { BUTTON_LABELS, BUTTON_LABEL_WORDS, BUTTON_STYLES, BUTTON_STYLE_NAMES, BRANDING_FORM_FIELDS, linkBrandingChoices, linkBrandingFormValues, linkBrandingFromForm, linkBrandingInputSchema, linkBrandingJson, mergeLinkBranding, parseLinkBranding, postedLinkBrandingValues, storedLinkBranding } from './schemas.ts';
export type { ButtonLabel, ButtonStyle, LinkBranding, LinkBrandingFormValues, LinkBrandingInput } from './schemas.ts';
export { buttonText, payBranding, type PayBranding } from './resolve.ts';
export { createBrandingService, logoPath, type BrandingService } from './service.ts';
export { LOGO_MAX_BYTES } from './logo.ts';
export { multipartBody, uploadOf } from './upload.ts';
export { brandingAssetRoutes } from './routes.ts';
