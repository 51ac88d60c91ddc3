// Documents in the browser: upload with progress, grounded answers with
// citations, the source viewer, the Documents page, and hostile documents.
const path = require('path');
const { test, expect } = require('@playwright/test');
const { startApp, startScriptedUpstream } = require('./helpers');

const FIXTURES = path.resolve(__dirname, '..', '..', 'tests', 'fixtures', 'docs');
const fixture = (name) => path.join(FIXTURES, name);
const answer = (page) => page.locator('article.message.assistant').last();
const composer = (page) => page.getByRole('textbox', { name: 'Message' });

async function send(page, text) {
  await composer(page).fill(text);
  await composer(page).press('Enter');
}

test.describe('embedded models', () => {
  let app;
  test.beforeAll(async () => { app = await startApp({ APP__LLM__MAX_TOKENS: '120' }); });
  test.afterAll(() => app && app.stop());

  test('upload a PDF and a markdown file, then get an answer that cites the PDF page', async ({ page }) => {
    test.setTimeout(300_000);
    await page.goto(app.url);
    await page.locator('input.file-input').setInputFiles([fixture('velloran-survey.pdf'), fixture('garden-guide.md')]);

    const rows = page.locator('.upload-tray li.upload');
    await expect(rows).toHaveCount(2);
    // Both go through the stages to "indexed"; record the stages seen on the way.
    const stages = await page.evaluate(async () => {
      const seen = new Set();
      const started = performance.now();
      while (performance.now() - started < 120_000) {
        const now = [...document.querySelectorAll('.upload-tray li.upload')].map((li) => li.dataset.stage);
        now.forEach((s) => seen.add(s));
        if (now.length === 2 && now.every((s) => s === 'indexed' || s === 'failed')) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      return [...seen];
    });
    console.log(`upload stages seen: ${stages.join(' → ')}`);
    await expect(rows.nth(0)).toHaveAttribute('data-stage', 'indexed');
    await expect(rows.nth(1)).toHaveAttribute('data-stage', 'indexed');
    await expect(rows.nth(0)).toContainText('velloran-survey.pdf');
    await expect(rows.nth(0)).toContainText(/Indexed · \d+ passages/);
    expect(stages.length).toBeGreaterThanOrEqual(2);

    // Answered only on page 2 of the PDF.
    await send(page, 'In which year was the Velloran bridge completed, and by whom?');
    const chips = answer(page).locator('.sources .source-chip');
    await expect(chips.first()).toBeVisible({ timeout: 120_000 });
    await expect(answer(page).locator('.markdown')).not.toHaveClass(/streaming/, { timeout: 120_000 });
    await expect(answer(page).locator('.meta')).toContainText('tokens');
    const text = await answer(page).locator('.markdown').innerText();
    console.log(`grounded answer: ${text}`);
    expect(text).toContain('1873');
    expect(text).toMatch(/Quist/);

    // The chip names the document and page; it opens the passage with the support highlighted.
    const pageTwo = chips.filter({ hasText: 'velloran-survey.pdf, p. 2' });
    await expect(pageTwo).toHaveCount(1);
    await pageTwo.click();
    const viewer = page.getByRole('dialog');
    await expect(viewer).toBeVisible();
    await expect(viewer.locator('h2')).toHaveText('velloran-survey.pdf, p. 2');
    // Every sentence the answer restates is marked, the one with the date among them.
    await expect(viewer.locator('mark').filter({ hasText: '1873' })).toHaveCount(1);
    await page.screenshot({ path: 'test-results/source-viewer.png' });
    await page.keyboard.press('Escape');
    await expect(viewer).toHaveCount(0);

    // After a reload the citations are still there.
    await page.reload();
    await expect(answer(page).locator('.source-chip', { hasText: 'p. 2' })).toBeVisible();

    // A follow-up is searched as a question of its own (written by the
    // embedded model, or the fallback if it is slow); the sources say what
    // was searched for, also after a reload.
    await send(page, 'And what did it cost?');
    const searched = answer(page).locator('.searched-for');
    await expect(searched).toBeVisible({ timeout: 120_000 });
    // The sources come before the first token: wait for the whole answer.
    await expect(answer(page).locator('.meta')).toContainText('tokens', { timeout: 120_000 });
    const query = await searched.innerText();
    console.log(`follow-up ${query}`);
    expect(query).toMatch(/^Searched for: \S/);
    await page.screenshot({ path: 'test-results/follow-up.png' });
    await page.reload();
    await expect(answer(page).locator('.searched-for')).toHaveText(query);

    // The Documents page lists both with their stats.
    await page.getByRole('link', { name: 'Documents' }).click();
    await expect(page.getByRole('heading', { name: 'Documents' })).toBeVisible();
    const table = page.locator('table.documents');
    await expect(table.locator('tr.document')).toHaveCount(2);
    const pdfRow = table.locator('tr.document', { hasText: 'velloran-survey.pdf' });
    await expect(pdfRow.locator('td').nth(2)).toHaveText('3');
    await expect(pdfRow).toHaveAttribute('data-status', 'indexed');
    await page.screenshot({ path: 'test-results/documents.png', fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    // Let the drawer finish sliding out of view.
    await page.waitForTimeout(500);
    await page.screenshot({ path: 'test-results/documents-phone.png', fullPage: true });
  });
});

test.describe('scripted model', () => {
  let app;
  let upstream;
  test.beforeAll(async () => {
    upstream = await startScriptedUpstream(['The museum ', 'opens at nine [1].']);
    app = await startApp({ APP__LLM__BASE_URL: upstream.baseUrl, APP__DOCUMENTS__MAX_FILE_BYTES: '30000' });
  });
  test.afterAll(() => { app && app.stop(); upstream && upstream.stop(); });

  test('a bad file shows its reason; a document with a script stays inert in the viewer', async ({ page }) => {
    let dialogs = 0;
    page.on('dialog', (d) => { dialogs += 1; d.dismiss(); });
    await page.goto(`${app.url}/documents`);
    // Playwright can't mix paths and buffers in one call; each call is one pick.
    await page.locator('input.file-input').setInputFiles([fixture('encrypted.pdf'), fixture('harbour-handbook.docx')]);
    await page.locator('input.file-input').setInputFiles([
      { name: 'evil.html', mimeType: 'text/html', buffer: Buffer.from(
        '<html><head><title>Evil museum</title><script>alert(1)</script></head><body>' +
        '<h1>Museum hours</h1><p>The museum opens at nine. <img src=x onerror="alert(2)"> ' +
        '&lt;script&gt;alert(3)&lt;/script&gt; <a href="javascript:alert(4)">click</a></p></body></html>') },
    ]);
    const rows = page.locator('.upload-tray li.upload');
    await expect(rows).toHaveCount(3);
    await expect(rows.nth(0)).toHaveAttribute('data-stage', 'failed', { timeout: 60_000 });
    await expect(rows.nth(0)).toContainText('password');
    await expect(rows.nth(1)).toHaveAttribute('data-stage', 'failed');
    await expect(rows.nth(1)).toContainText('too large');
    await expect(rows.nth(2)).toHaveAttribute('data-stage', 'indexed', { timeout: 60_000 });
    // The failed PDF is listed with its reason; the refused file never became a document.
    await expect(page.locator('tr.document')).toHaveCount(2);
    await expect(page.locator('tr.document[data-status="failed"] .doc-error')).toContainText('password');

    await page.goto(app.url);
    await send(page, 'When does the museum open?');
    await expect(answer(page).locator('.markdown')).toContainText('opens at nine', { timeout: 30_000 });
    const chip = answer(page).locator('.source-chip').first();
    await expect(chip).toContainText('evil.html');
    await chip.click();
    const viewer = page.getByRole('dialog');
    await expect(viewer).toContainText('The museum opens at nine.');
    await expect(viewer.locator('mark')).toContainText('opens at nine');
    await expect(viewer.locator('script, img, a')).toHaveCount(0);
    expect(dialogs).toBe(0);
  });
});
