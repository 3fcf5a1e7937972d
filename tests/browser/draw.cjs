// The drawing page in a real browser: starts `examples/serve` on a free port of 127.0.0.1,
// draws a 1 and then a 7 with the mouse in headless Chromium, and checks that the page shows
// each digit with its C1 and C3 maps; saves a screenshot of the 7.
//
//   node tests/browser/draw.cjs SERVE_BINARY SCREENSHOT.png
//
// Needs Debian's chromium at /usr/bin/chromium and npm's playwright-core (NODE_PATH may point
// at the node_modules holding it). Every wait is bounded.
"use strict";
const { spawn } = require("node:child_process");
const { chromium } = require("playwright-core");

const [serveBinary, screenshot] = process.argv.slice(2);
if (!serveBinary || !screenshot) {
  console.error("usage: node tests/browser/draw.cjs SERVE_BINARY SCREENSHOT.png");
  process.exit(2);
}

/** Starts the server; resolves with it and its address once it prints the address. */
function startServer() {
  return new Promise((resolve, reject) => {
    const server = spawn(serveBinary, ["--port", "0"], { stdio: ["ignore", "pipe", "inherit"] });
    const timer = setTimeout(() => reject(new Error("the server printed no address in 20 s")), 20000);
    server.on("error", reject);
    server.stdout.once("data", chunk => {
      clearTimeout(timer);
      const address = chunk.toString().trim();
      if (!address.startsWith("http://127.0.0.1:")) reject(new Error(`address ${address}`));
      resolve({ server, address });
    });
  });
}

/** Drags the mouse through `points` ([x, y] in the pad's 280x280 pixels). */
async function stroke(page, box, points) {
  const at = ([x, y]) => [box.x + (x * box.width) / 280, box.y + (y * box.height) / 280];
  await page.mouse.move(...at(points[0]));
  await page.mouse.down();
  for (const p of points.slice(1)) await page.mouse.move(...at(p), { steps: 12 });
  await page.mouse.up();
}

/** Waits (bounded) until the page shows `digit`; returns what it shows. */
async function expectDigit(page, digit) {
  await page.waitForFunction(
    d => document.getElementById("digit").textContent === d,
    String(digit),
    { timeout: 20000 },
  ).catch(() => {});
  const shown = await page.textContent("#digit");
  const status = await page.textContent("#status");
  if (shown !== String(digit)) throw new Error(`drew a ${digit}, the page shows ${JSON.stringify(shown)} (${status})`);
  const maps = await page.$$eval(".maps canvas", cs => cs.length);
  if (maps !== 6 + 16) throw new Error(`expected 22 feature maps, the page shows ${maps}`);
  console.log(`drew a ${digit}: the page shows ${shown}, ${status}, ${maps} feature maps`);
}

(async () => {
  const { server, address } = await startServer();
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--no-first-run"],
    timeout: 60000,
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 720 } });
    page.setDefaultTimeout(20000);
    await page.goto(address, { timeout: 20000 });
    const box = await page.locator("#pad").boundingBox();
    await stroke(page, box, [[140, 40], [138, 140], [136, 240]]);
    await expectDigit(page, 1);
    await page.click("#clear");
    await stroke(page, box, [[70, 50], [210, 50], [170, 130], [125, 245]]);
    await expectDigit(page, 7);
    await page.screenshot({ path: screenshot });
    console.log(`saved ${screenshot}`);
  } finally {
    await browser.close();
    server.kill();
  }
})().catch(e => {
  console.error(e.message || e);
  process.exit(1);
});
