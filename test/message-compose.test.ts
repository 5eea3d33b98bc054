import { expect } from 'chai';
import { compose, createComposer, type ComposeInput } from '../src/features/deliveries/compose.ts';
import { defaultTemplate, TEMPLATE_KINDS, type MessageTemplate } from '../src/features/deliveries/templates.ts';
import { emailViews } from '../src/runtime.ts';

const email = { id: 'email', style: 'email' as const };
const sms = { id: 'sms', style: 'text' as const };

/** Templates a merchant might save, including awkward ones. */
const custom = (body: string, subject: string | null = 'About {{link_name}} {{unknown}}'): MessageTemplate => ({ kind: 'reminder', channel: 'email', style: 'email', subject, body, custom: true });
const templates: MessageTemplate[] = [
  ...TEMPLATE_KINDS.map((k) => defaultTemplate(k, email)),
  ...TEMPLATE_KINDS.filter((k) => k !== 'receipt').map((k) => defaultTemplate(k, sms)),
  custom('{{name}}\n{{first_name}}\n\n\n{{amount}} <b>&amp;</b> {{url}}\n  \n{{business}}{{reminder_number}}'),
  custom('  {{ name }}  \n\n{{link_name}}\n{{link_name}}\n\n'),
  custom('Only text, no placeholder.', null),
  custom('A marker-looking text: \uE000&1\uE001 and {{name}}', 'Subject \uE000&amp;2\uE001'),
  custom('{{amount}}\n{{amount}}\n\n{{first_name}}'),
];

/** Values that escape, repeat, break lines, look empty or carry the composer's own marker characters. */
const inputs: Omit<ComposeInput, 'template'>[] = [
  { business: 'Acme', brandColor: '#2563eb', customerName: 'Jane Doe', linkName: 'Invoice 12', amount: 1250, currency: 'EUR', url: 'https://pay.example/acme/x?c=abc', reminderNumber: 2 },
  { business: 'Tom & Jerry\'s <Shop>', brandColor: '#ffee00', customerName: '  "Zoë" <script>  ', linkName: 'A & B', amount: 0, currency: 'JPY', url: 'https://pay.example/r/a&b="c"', reminderNumber: 1 },
  { business: 'Line\nBreak', brandColor: 'not a colour', customerName: 'Two\nLines', linkName: 'x', amount: 99, currency: 'KWD', url: 'u', reminderNumber: 3 },
  { business: 'B', brandColor: '#000000', customerName: '', linkName: '   ', amount: null, currency: 'EUR', url: 'https://pay.example/y', reminderNumber: 0 },
  { business: 'Marker \uE000&0\uE001', brandColor: '#123456', customerName: 'Ann \uE000&amp;1\uE001', linkName: '$& $1 $$', amount: 5, currency: 'USD', url: 'https://pay.example/$&', reminderNumber: 9 },
  { business: 'Tab\tCo', brandColor: '#FFFFFF', customerName: '\u2028Sep', linkName: '\u00a0', amount: 123456789, currency: 'EUR', url: 'https://pay.example/z', reminderNumber: 4 },
];

describe('composing a batch of messages', () => {
  const eta = emailViews();

  it('gives byte for byte the message compose() gives, for every template and recipient', () => {
    const batch = createComposer(eta);
    let compared = 0;
    // Twice over: the second round is served from the templates the composer has rendered.
    for (let round = 0; round < 2; round++) {
      for (const template of templates) {
        for (const input of inputs) {
          const one = compose(eta, { template, ...input });
          const many = batch({ template, ...input });
          expect(many, `${template.kind}/${template.style} ${JSON.stringify(template.body)} for ${JSON.stringify(input.customerName)}`).to.deep.equal(one);
          compared++;
        }
      }
    }
    expect(compared).to.equal(2 * templates.length * inputs.length);
  });

  it('renders each template once per batch, not once per message', () => {
    let renders = 0;
    const counting = emailViews();
    const render = counting.html.render.bind(counting.html);
    counting.html.render = ((...args: Parameters<typeof render>) => {
      renders++;
      return render(...args);
    }) as typeof render;
    const batch = createComposer(counting);
    const template = defaultTemplate('reminder', email);
    for (let i = 0; i < 50; i++) batch({ template, ...inputs[0], customerName: `Customer ${i}`, url: `https://pay.example/acme/x?c=${i}` });
    expect(renders).to.equal(1);
    // A message whose values could change the text's shape is composed the ordinary way (one more render).
    batch({ template, ...inputs[0], customerName: 'Two\nLines' });
    expect(renders).to.equal(2);
  });
});
