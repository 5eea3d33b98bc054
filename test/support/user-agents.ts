// User agents for the analytics suites: what real browsers and real bots send.

/** Real user agents, as their browsers send them. */
export const BROWSERS: { name: string; ua: string; browser: string; os: string; device: string; label: string }[] = [
  {
    name: 'Chrome on a Mac',
    ua: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
    browser: 'Chrome', os: 'macOS', device: 'desktop', label: 'Chrome / Mac',
  },
  {
    name: 'Safari on a Mac',
    ua: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15',
    browser: 'Safari', os: 'macOS', device: 'desktop', label: 'Safari / Mac',
  },
  {
    name: 'Firefox on Windows',
    ua: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0',
    browser: 'Firefox', os: 'Windows', device: 'desktop', label: 'Firefox / Windows',
  },
  {
    name: 'Edge on Windows',
    ua: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80',
    browser: 'Edge', os: 'Windows', device: 'desktop', label: 'Edge / Windows',
  },
  {
    name: 'Chrome on Windows',
    ua: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
    browser: 'Chrome', os: 'Windows', device: 'desktop', label: 'Chrome / Windows',
  },
  {
    name: 'Safari on an iPhone',
    ua: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1',
    browser: 'Safari', os: 'iOS', device: 'mobile', label: 'Safari / iOS',
  },
  {
    name: 'Safari on an iPad',
    ua: 'Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1',
    browser: 'Safari', os: 'iOS', device: 'tablet', label: 'Safari / iOS',
  },
  {
    name: 'Chrome on an iPhone',
    ua: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1',
    browser: 'Chrome', os: 'iOS', device: 'mobile', label: 'Chrome / iOS',
  },
  {
    name: 'Firefox on an iPhone',
    ua: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/125.0 Mobile/15E148 Safari/605.1.15',
    browser: 'Firefox', os: 'iOS', device: 'mobile', label: 'Firefox / iOS',
  },
  {
    name: 'Chrome on an Android phone',
    ua: 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36',
    browser: 'Chrome', os: 'Android', device: 'mobile', label: 'Chrome / Android',
  },
  {
    name: 'Chrome on an Android tablet',
    ua: 'Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
    browser: 'Chrome', os: 'Android', device: 'tablet', label: 'Chrome / Android',
  },
  {
    name: 'an Android app’s web view',
    ua: 'Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/UQ1A.240205.004; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/124.0.6367.82 Mobile Safari/537.36',
    browser: 'Chrome', os: 'Android', device: 'mobile', label: 'Chrome / Android',
  },
  {
    name: 'Samsung Internet',
    ua: 'Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36',
    browser: 'Samsung Internet', os: 'Android', device: 'mobile', label: 'Samsung Internet / Android',
  },
  {
    name: 'Firefox on Android',
    ua: 'Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0',
    browser: 'Firefox', os: 'Android', device: 'mobile', label: 'Firefox / Android',
  },
  {
    name: 'Edge on Android',
    ua: 'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36 EdgA/124.0.2478.64',
    browser: 'Edge', os: 'Android', device: 'mobile', label: 'Edge / Android',
  },
  {
    name: 'a Cubot phone (a maker whose name ends in "bot")',
    ua: 'Mozilla/5.0 (Linux; Android 11; Cubot Note 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36',
    browser: 'Chrome', os: 'Android', device: 'mobile', label: 'Chrome / Android',
  },
  {
    name: 'Firefox on Ubuntu',
    ua: 'Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0',
    browser: 'Firefox', os: 'Linux', device: 'desktop', label: 'Firefox / Linux',
  },
  {
    name: 'Chrome on Linux',
    ua: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
    browser: 'Chrome', os: 'Linux', device: 'desktop', label: 'Chrome / Linux',
  },
  {
    name: 'Chrome on a Chromebook',
    ua: 'Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
    browser: 'Chrome', os: 'ChromeOS', device: 'desktop', label: 'Chrome / ChromeOS',
  },
  {
    name: 'Opera on Windows',
    ua: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 OPR/109.0.0.0',
    browser: 'Opera', os: 'Windows', device: 'desktop', label: 'Opera / Windows',
  },
];

/** Crawlers, link unfurlers, scripts and headless browsers: never a view. */
export const BOTS: [string, string][] = [
  ['Googlebot', 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)'],
  ['Googlebot smartphone', 'Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.91 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)'],
  ['Bingbot', 'Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)'],
  ['Applebot', 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)'],
  ['facebookexternalhit', 'facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)'],
  ['Slackbot-LinkExpanding', 'Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)'],
  ['WhatsApp', 'WhatsApp/2.23.20.0'],
  ['Twitterbot', 'Twitterbot/1.0'],
  ['LinkedInBot', 'LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)'],
  ['TelegramBot', 'TelegramBot (like TwitterBot)'],
  ['Discordbot', 'Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)'],
  ['curl', 'curl/8.5.0'],
  ['Wget', 'Wget/1.21.4'],
  ['python-requests', 'python-requests/2.31.0'],
  ['Go', 'Go-http-client/1.1'],
  ['axios', 'axios/1.6.8'],
  ['Node.js fetch', 'node'],
  ['HeadlessChrome', 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.6367.60 Safari/537.36'],
  ['a bare Mozilla/5.0', 'Mozilla/5.0'],
  ['an empty user agent', ''],
  ['a blank user agent', '   '],
];
