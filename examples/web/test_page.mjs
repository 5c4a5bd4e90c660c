// The page in a real headless browser (Debian's chromium, driven by playwright-core: no
// browser download): load it, draw digits with pointer events, let the training demo run,
// save a screenshot. Prints one JSON object (what tests/test_web.py checks).
//
//   node test_page.mjs URL SCREENSHOT.png [CHROMIUM]
import { chromium } from "playwright-core";

const [url, screenshot, executablePath = "/usr/bin/chromium"] = process.argv.slice(2);
const TRAIN_EPOCHS = 60; // wait for this many epochs of the training demo

// Strokes in the pad's coordinates (280x280): a 7 and a 0.
const STROKES = {
  7: [
    [
      [70, 60],
      [210, 60],
      [150, 150],
      [110, 230],
    ],
  ],
  0: [
    Array.from({ length: 25 }, (_, i) => {
      const a = (2 * Math.PI * i) / 24 - Math.PI / 2;
      return [140 + 60 * Math.cos(a), 140 + 90 * Math.sin(a)];
    }),
  ],
};

const browser = await chromium.launch({
  executablePath,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
});
const out = { console: [], drawings: {} };
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 1000 } });
  page.on("console", (m) => out.console.push(m.text()));
  page.on("pageerror", (e) => out.console.push("pageerror: " + e.message));
  const t0 = Date.now();
  await page.goto(url);
  await page.waitForFunction(() => window.nanonnWeb && (window.nanonnWeb.ready || window.nanonnWeb.error), null, {
    timeout: 120000,
  });
  out.loadWallMs = Date.now() - t0;
  out.error = await page.evaluate(() => window.nanonnWeb.error);
  out.stats = await page.evaluate(() => window.nanonnWeb.stats);
  if (!out.error) {
    const box = await page.locator("#pad").boundingBox();
    for (const [digit, strokes] of Object.entries(STROKES)) {
      await page.click("#clear");
      const before = await page.evaluate(() => window.nanonnWeb.classified);
      for (const stroke of strokes) {
        await page.mouse.move(box.x + stroke[0][0], box.y + stroke[0][1]);
        await page.mouse.down();
        for (const [x, y] of stroke.slice(1)) await page.mouse.move(box.x + x, box.y + y, { steps: 6 });
        await page.mouse.up();
      }
      await page.waitForFunction((n) => window.nanonnWeb.classified > n && window.nanonnWeb.digits.final, before);
      out.drawings[digit] = await page.evaluate(() => window.nanonnWeb.digits);
    }
    await page.waitForFunction(
      (n) => window.nanonnWeb.error || window.nanonnWeb.train.epochs >= n,
      TRAIN_EPOCHS,
      { timeout: 300000 },
    );
    out.error = await page.evaluate(() => window.nanonnWeb.error);
    out.train = await page.evaluate(() => window.nanonnWeb.train);
    if (await page.evaluate(() => window.nanonnWeb.train.running)) await page.click("#train-toggle"); // pause
    await page.screenshot({ path: screenshot, fullPage: true });
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
