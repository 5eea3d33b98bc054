/**
 * Removing a saved payment profile, for the merchant (customer page, API) and the customer (their
 * receipt): the provider deletes the saved card at the vendor first (`forgetProfile`), then Paylink
 * drops its record — so a profile is never shown as gone while the vendor would still offer the card.
 */
import { ServiceUnavailableError } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { providerErrorOf, type Registries } from '../../core/plugins/registries.ts';
import type { PaymentProfile, PaymentProfiles } from '../customers/index.ts';
import { toPluginMerchant, type MerchantService } from '../merchants/index.ts';
import type { CheckoutProviders } from './service.ts';

export interface SavedProfileDeps {
  profiles: PaymentProfiles;
  registries: Registries;
  providers: Pick<CheckoutProviders, 'settingsFor'>;
  merchants: Pick<MerchantService, 'getByKey'>;
  log: Logger;
}

export function createSavedProfiles(deps: SavedProfileDeps) {
  const { profiles, registries, providers, merchants, log } = deps;
  /** A provider's name for people ("Stripe"), or its id when it is no longer installed. */
  const providerName = (id: string) => registries.providers.get(id)?.name ?? id;

  return {
    providerName,

    /** A customer's profiles with the provider's name, oldest first. */
    async forCustomer(customerKey: number): Promise<(PaymentProfile & { providerName: string })[]> {
      return (await profiles.forCustomer(customerKey)).map((p) => ({ ...p, providerName: providerName(p.provider) }));
    },

    /**
     * Deletes the saved card at the provider, then the record. The vendor unreachable → 503 and the
     * profile stays; a provider that is gone, not configured or refuses for good → the record goes
     * (Paylink can no longer offer that card) and the refusal is logged.
     */
    async forget(profile: PaymentProfile): Promise<void> {
      const provider = registries.providers.get(profile.provider);
      if (provider?.forgetProfile) {
        const merchant = await merchants.getByKey(profile.merchantKey);
        const settings = await providers.settingsFor(profile.merchantKey, profile.provider);
        if (merchant && settings !== null) {
          try {
            await provider.forgetProfile({ ref: profile.ref, label: profile.label, merchant: toPluginMerchant(merchant) }, settings);
          } catch (err) {
            const retryable = providerErrorOf(err)?.retryable ?? true;
            if (retryable) throw new ServiceUnavailableError(`${provider.name} could not be reached to remove the saved payment details. Nothing was removed; please try again in a moment.`, err);
            log.warn('the provider refused to forget a saved profile; removed from Paylink only', { profile: profile.id, provider: profile.provider, error: err });
          }
        }
      }
      await profiles.remove(profile.key);
    },
  };
}

export type SavedProfiles = ReturnType<typeof createSavedProfiles>;
