/**
 * Writes demo/sample.ndjson: a deterministic mix of message types over three locations, with a
 * few bad rows of every kind, for `pnpm demo`. Run again only to change the sample.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';

const LOCATIONS = ['acme-dental', 'brightside-gym', 'cornerstone-law'];
const rows: string[] = [];
let n = 0;
const next = () => (n = (n * 1103515245 + 12345) % 2147483648) / 2147483648;
for (let i = 0; i < 2400; i += 1) {
  const locationId = LOCATIONS[i % 3] as string;
  const at = 1_714_564_800 + i * 97;
  const r = next();
  let row: Record<string, unknown>;
  if (r < 0.55)
    row = {
      locationId,
      type: 'SMS',
      contactId: `c-${i % 400}`,
      message: `Reminder: your visit on day ${i % 28} is confirmed. Reply STOP to opt out.`,
      altId: `sms-${i}`,
      date: at,
    };
  else if (r < 0.75)
    row = {
      locationId,
      type: 'Email',
      contactId: `c-${i % 400}`,
      subject: `Receipt #${i}`,
      html: `<p>Thanks for your payment #${i}.</p>`,
      emailFrom: 'Billing@Example.com',
      emailTo: `Client${i % 400}@example.com`,
      altId: `email-${i}`,
      date: new Date(at * 1000).toISOString(),
    };
  else if (r < 0.87)
    row = {
      locationId,
      type: 'WhatsApp',
      contactId: `c-${i % 400}`,
      conversationProviderId: 'prov-whatsapp',
      message: `Your order ${i} has shipped`,
      altId: `wa-${i}`,
      date: at,
    };
  else if (r < 0.95)
    row = {
      locationId,
      type: 'Call',
      contactId: `c-${i % 400}`,
      conversationProviderId: 'prov-voice',
      call: { to: '(503) 708-1210', from: `503-708-${String(1000 + (i % 8000)).padStart(4, '0')}`, status: 'completed' },
      altId: `call-${i}`,
      date: at,
    };
  // A provider HighLevel does not know: refused with 400, dead-lettered.
  else
    row = {
      locationId,
      type: 'FB',
      contactId: `c-${i % 400}`,
      conversationProviderId: 'prov-retired',
      message: `Message ${i} from Facebook`,
      altId: `fb-${i}`,
      date: at,
    };
  rows.push(JSON.stringify(row));
  if (i % 400 === 17) rows.push('{"locationId": "acme-dental", "type": "SMS", "message": "cut off');
  if (i % 400 === 91)
    rows.push(
      JSON.stringify({
        locationId,
        type: 'Call',
        contactId: 'c-1',
        conversationProviderId: 'prov-voice',
        call: { to: 'call me maybe', from: '503-708-1211' },
        altId: `bad-phone-${i}`,
      }),
    );
  if (i % 400 === 203) rows.push(JSON.stringify({ locationId, contactId: 'c-2', message: 'no type', altId: `no-type-${i}` }));
  if (i % 400 === 307)
    rows.push(JSON.stringify({ locationId, type: 'SMS', contactId: 'c-3', message: 'local time', date: '2024-05-01T09:00:00', altId: `no-zone-${i}` }));
}
writeFileSync(resolve(import.meta.dirname, '../demo/sample.ndjson'), `${rows.join('\n')}\n`);
process.stdout.write(`wrote ${rows.length} rows\n`);
