// channel-vonage: SMS (legacy SMS API) and WhatsApp (Messages API) through the Vonage SDK. Without an
// API key it registers nothing, so channel-outbox keeps serving sms and whatsapp; WhatsApp needs the
// business number in whatsappFrom as well.
import { Vonage } from '@vonage/server-sdk';
import { definePlugin, ProviderError, type OutgoingMessage, z } from 'paylink/plugin-api';

const text = z.string().min(1).optional();
type SmsParams = Parameters<Vonage['sms']['send']>[0];
type WhatsAppParams = Parameters<Vonage['messages']['send']>[0];

/** The GSM 03.38 alphabet (basic and extension): anything else must go as a unicode SMS. */
const GSM7 = /^[@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !"#¤%&'()*+,\-./0-9:;<=>?¡A-ZÄÖÑÜ§¿a-zäöñüà^{}\\[~\]|€\f]*$/;
/** Alphanumeric sender id from the business name: ASCII letters, digits and spaces, at most 11. */
const senderId = (name: string) =>
  name.normalize('NFKD').replace(/[^A-Za-z0-9 ]+/g, '').replace(/ +/g, ' ').trim().slice(0, 11).trim() || 'Paylink';

/** Vonage wants E.164 digits without the '+'. */
function msisdn(to: string): string {
  const digits = to.replace(/^\+/, '');
  if (!/^[1-9]\d{6,14}$/.test(digits)) throw new ProviderError(`"${to}" is not a phone number in international format`, { retryable: false, code: 'invalid_recipient' });
  return digits;
}

type SdkError = { name?: string; code?: string; message?: string; response?: { status?: number; text(): Promise<string>; messages?: { status: string; errorText?: string }[] } };
const answered = (retryable: boolean, reason: string, cause: unknown) =>
  new ProviderError(`Vonage ${retryable ? 'could not take' : 'rejected'} the message: ${reason}`, { retryable, code: retryable ? 'vonage_unavailable' : 'vonage_rejected', cause });

/** SDK errors → ProviderError: HTTP 5xx/429, SMS status 1 (throttled) or 5 (internal) and network trouble retry; other answers are final. */
async function toProviderError(err: SdkError): Promise<ProviderError> {
  const failed = err.response?.messages?.find((m) => m.status !== '0'); // the SMS API answers 200 with a status per part
  if (failed) return answered(failed.status === '1' || failed.status === '5', failed.errorText ?? `status ${failed.status}`, err);
  const status = err.response?.status;
  if (typeof status === 'number') {
    const body = await err.response!.text().catch(() => '');
    let reason = body.slice(0, 200) || 'no reason given';
    try {
      const problem = JSON.parse(body);
      reason = [problem.title, problem.detail].filter(Boolean).join(': ') || reason;
    } catch {}
    return answered(status >= 500 || status === 429, `${reason} (HTTP ${status})`, err);
  }
  const network = err.name === 'FetchError' || err.name === 'AbortError' || /^E[A-Z]+$/.test(err.code ?? '');
  return new ProviderError(`${network ? 'Could not reach Vonage' : 'Vonage request failed'}: ${err.message ?? String(err)}`, { retryable: network, code: network ? 'vonage_unreachable' : 'vonage_failed', cause: err });
}

export default definePlugin({
  id: 'channel-vonage',
  version: '1.0.0',
  apiVersion: 1,
  description: 'Sends SMS and WhatsApp messages through Vonage (VONAGE_API_KEY, VONAGE_API_SECRET, VONAGE_WHATSAPP_FROM).',
  config: z
    .object({
      apiKey: text,
      apiSecret: text,
      applicationId: text,
      privateKey: text,
      restHost: z.url().optional(),
      apiHost: z.url().optional(),
      whatsappFrom: z.string().regex(/^\+?[1-9]\d{6,14}$/, 'must be a phone number in international format').optional(),
    })
    .refine((c) => !c.apiKey || c.apiSecret, { message: 'is required with apiKey', path: ['apiSecret'] }),
  register(api, config) {
    if (!config.apiKey) return api.log.info('VONAGE_API_KEY not set; channel-outbox keeps sms and whatsapp');
    const privateKey = config.privateKey?.replace(/\\n/g, '\n'); // PEM given in one env line
    const vonage = new Vonage(
      { apiKey: config.apiKey, apiSecret: config.apiSecret, ...(config.applicationId && privateKey ? { applicationId: config.applicationId, privateKey } : {}) },
      { restHost: config.restHost, apiHost: config.apiHost, timeout: 10_000 },
    );
    const send = async (call: () => Promise<string | undefined>) => {
      try {
        return { providerMessageId: (await call()) ?? '' };
      } catch (err) {
        throw err instanceof ProviderError ? err : await toProviderError(err as SdkError);
      }
    };
    api.channels.register({
      id: 'sms',
      label: 'SMS',
      address: 'phone',
      send: (m: OutgoingMessage) =>
        send(async () => {
          const params = { to: msisdn(m.to), from: senderId(m.merchant.name), text: m.text, type: GSM7.test(m.text) ? 'text' : 'unicode', clientRef: m.id };
          return (await vonage.sms.send(params as SmsParams)).messages[0]?.messageId;
        }),
    });
    if (!config.whatsappFrom) return api.log.info('VONAGE_WHATSAPP_FROM not set; channel-outbox keeps whatsapp');
    const from = config.whatsappFrom.replace(/^\+/, '');
    api.channels.register({
      id: 'whatsapp',
      label: 'WhatsApp',
      address: 'phone',
      send: (m: OutgoingMessage) =>
        send(async () => {
          const params = { channel: 'whatsapp', messageType: 'text', to: msisdn(m.to), from, text: m.text, clientRef: m.id };
          return (await vonage.messages.send(params as WhatsAppParams)).messageUUID;
        }),
    });
  },
});
