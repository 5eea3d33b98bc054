// The customer's receipt: what it names (the payment method, when the provider reported one), its
// Print button and print stylesheet.
import { expect } from 'chai';
import supertest from 'supertest';
import { forEachTarget } from './support/targets.ts';
import { uniqueHandle, useEnv } from './support/harness.ts';
import { formatPaymentMethod } from '../src/features/checkout/payment-method.ts';

describe('formatPaymentMethod', () => {
  it('names a card by its brand and last four digits', () => {
    expect(formatPaymentMethod({ type: 'card', brand: 'visa', last4: '4242' })).to.equal('Visa •••• 4242');
    expect(formatPaymentMethod({ type: 'card', brand: 'amex', last4: '0005' })).to.equal('American Express •••• 0005');
    expect(formatPaymentMethod({ type: 'card', brand: 'MasterCard', last4: '4444' })).to.equal('Mastercard •••• 4444');
    expect(formatPaymentMethod({ type: 'card', brand: null, last4: '1111' })).to.equal('Card •••• 1111');
    expect(formatPaymentMethod({ type: 'card', brand: 'visa' })).to.equal('Visa');
  });

  it('names other methods in plain words, and unknown ones readably', () => {
    expect(formatPaymentMethod({ type: 'sepa_debit', last4: '3000' })).to.equal('SEPA Direct Debit •••• 3000');
    expect(formatPaymentMethod({ type: 'ideal' })).to.equal('iDEAL');
    expect(formatPaymentMethod({ type: 'paypal' })).to.equal('PayPal');
    expect(formatPaymentMethod({ type: 'some_new_wallet' })).to.equal('Some new wallet');
  });

  it('shows nothing it cannot trust: no method, no type, odd last digits', () => {
    expect(formatPaymentMethod(null)).to.equal(null);
    expect(formatPaymentMethod(undefined)).to.equal(null);
    expect(formatPaymentMethod({ type: '' })).to.equal(null);
    expect(formatPaymentMethod({ type: 'card', brand: 'visa', last4: '42<b>' })).to.equal('Visa');
    expect(formatPaymentMethod({ type: 'card', brand: 'visa', last4: '424242' })).to.equal('Visa');
  });
});

forEachTarget('receipt page', (target) => {
  const env = useEnv(target);

  async function paidPayment(): Promise<string> {
    const handle = uniqueHandle('rc');
    const { merchant } = await env.rt.services.merchants.signUp({ name: 'Corner Bakery', handle, email: `${handle}@example.test`, password: 'correct horse battery' });
    const link = await env.rt.services.links.create(merchant, { type: 'amount', name: 'Birthday cake', amount: 1250 });
    const { payment } = await env.rt.services.checkout.start(merchant, link, { amount: 1250, currency: 'EUR', name: 'Ann Example', email: 'ann@example.test' });
    expect((await env.rt.services.checkout.authorize(payment.id, 'sbx_1')).status).to.equal('paid');
    return payment.id;
  }

  it('has a Print button (a static script, no inline script) and a print stylesheet', async () => {
    const id = await paidPayment();
    const res = await supertest(env.app).get(`/receipt/${id}`).expect(200);
    expect(res.text).to.match(/<button type="button" class="pay-button secondary js-only" data-print>Print receipt<\/button>/);
    expect(res.text).to.match(/<script src="\/static\/js\/print\.[0-9a-f]{10}\.js" defer><\/script>/);
    expect(res.text).not.to.match(/<script(?![^>]*\bsrc=)/);
    expect(res.headers['content-security-policy']).not.to.match(/unsafe-inline/);
    const js = await supertest(env.app).get('/static/js/print.js').expect(200);
    expect(js.text).to.include('window.print()');
    const css = await supertest(env.app).get('/static/css/pay.css').expect(200);
    expect(css.text).to.match(/@media print \{[^}]*\}[\s\S]*\.no-print/);
  });

  it('shows the payment method when the provider reported one, and nothing when it did not', async () => {
    const id = await paidPayment();
    expect((await supertest(env.app).get(`/receipt/${id}`).expect(200)).text).not.to.include('Paid with');
    const checkout = env.rt.services.checkout;
    const original = checkout.receipt;
    checkout.receipt = async (paymentId) => {
      const found = await original(paymentId);
      return found && { ...found, payment: Object.assign({}, found.payment, { paymentMethod: { type: 'card', brand: 'visa', last4: '4242' } }) };
    };
    try {
      const page = await supertest(env.app).get(`/receipt/${id}`).expect(200);
      expect(page.text).to.include('<div><dt>Paid with</dt><dd>Visa •••• 4242</dd></div>');
    } finally {
      checkout.receipt = original;
    }
  });
});
