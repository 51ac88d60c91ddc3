const { test, expect } = require('@playwright/test');
const { startApp, startScriptedUpstream } = require('./helpers');

const answer = (page) => page.locator('article.message.assistant').last();
const composer = (page) => page.getByRole('textbox', { name: 'Message' });

async function send(page, text) {
  await composer(page).fill(text);
  await composer(page).press('Enter');
}

test.describe('embedded model', () => {
  let app;
  test.beforeAll(async () => { app = await startApp({ APP__LLM__MAX_TOKENS: '200' }); });
  test.afterAll(() => app && app.stop());

  test('the answer streams in, token by token, and survives a reload', async ({ page }) => {
    await page.goto(app.url);
    await expect(page.getByRole('heading', { name: 'What can I help with?' })).toBeVisible();
    await send(page, 'Write a haiku about the sea.');
    await expect(page.locator('article.message.user').last()).toContainText('Write a haiku about the sea.');

    // Sample the answer's length once per animation frame while it streams.
    const lengths = await answer(page).locator('.markdown').evaluate(async (el) => {
      const seen = [];
      const started = performance.now();
      while (performance.now() - started < 60_000) {
        await new Promise((r) => requestAnimationFrame(r));
        seen.push(el.textContent.length);
        if (!el.classList.contains('streaming') && seen[seen.length - 1] > 0) break;
      }
      return seen;
    });
    const distinct = [...new Set(lengths.filter((n) => n > 0))];
    console.log(`answer grew through ${distinct.length} lengths over ${lengths.length} frames`);
    expect(distinct.length).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < distinct.length; i++) expect(distinct[i]).toBeGreaterThan(distinct[i - 1]);

    await expect(answer(page).locator('.meta')).toContainText('tokens');
    await expect(answer(page).locator('.meta')).toContainText('qwen2.5');
    const text = await answer(page).locator('.markdown').innerText();
    expect(text.trim().length).toBeGreaterThan(10);

    // The address now names the conversation; the sidebar lists it by its question.
    await expect(page).toHaveURL(/\/c\/[0-9a-f-]{36}$/);
    await expect(page.locator('.conversation-list')).toContainText('Write a haiku about the sea.');

    await page.reload();
    await expect(page.locator('article.message.user')).toContainText('Write a haiku about the sea.');
    await expect(answer(page).locator('.markdown')).toHaveText(text);
  });

  test('Stop halts generation', async ({ page }) => {
    await page.goto(app.url);
    await send(page, 'Count from 1 to 200, one number per line.');
    await expect(answer(page).locator('.markdown')).not.toBeEmpty();
    await page.getByRole('button', { name: 'Stop generating' }).click();
    await expect(answer(page).locator('.status.stopped')).toBeVisible({ timeout: 5_000 });
    const stoppedAt = await answer(page).locator('.markdown').innerText();
    await page.waitForTimeout(1_500);
    expect(await answer(page).locator('.markdown').innerText()).toBe(stoppedAt);
    await expect(page.getByRole('button', { name: 'Send message' })).toBeVisible();
  });

  test("another browser does not see this browser's chats", async ({ browser }) => {
    const first = await browser.newContext();
    const page = await first.newPage();
    await page.goto(app.url);
    await send(page, 'Say the word banana.');
    await expect(answer(page).locator('.meta')).toContainText('tokens');
    const url = page.url();
    expect(url).toMatch(/\/c\//);

    const second = await browser.newContext();
    const other = await second.newPage();
    await other.goto(app.url);
    await expect(other.locator('.sidebar')).toContainText('No conversations yet.');
    await other.goto(url);
    await expect(other.getByRole('alert')).toContainText('does not exist or is not yours');
    await expect(other.locator('body')).not.toContainText('Say the word banana.');
    await first.close();
    await second.close();
  });

  test('an over-long message cannot be sent and says why', async ({ page }) => {
    await page.goto(app.url);
    await composer(page).fill('x'.repeat(8001));
    await expect(page.locator('.composer-hint')).toContainText('too long');
    await expect(page.getByRole('button', { name: 'Send message' })).toBeDisabled();
    await composer(page).press('Enter');
    await expect(page.locator('article.message')).toHaveCount(0);
  });

  test('Shift+Enter adds a line instead of sending', async ({ page }) => {
    await page.goto(app.url);
    await composer(page).fill('first line');
    await composer(page).press('Shift+Enter');
    await composer(page).pressSequentially('second line');
    await expect(composer(page)).toHaveValue('first line\nsecond line');
    await expect(page.locator('article.message')).toHaveCount(0);
  });

  test('looks right at desktop and phone width', async ({ page }) => {
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.goto(app.url);
    await expect(page.locator('.empty-state')).toBeVisible();
    await page.waitForTimeout(400); // let the drawer transition settle
    await page.screenshot({ path: 'test-results/home-desktop.png' });
    await page.setViewportSize({ width: 390, height: 844 });
    await expect(page.getByRole('button', { name: 'Open menu' })).toBeVisible();
    await page.waitForTimeout(400);
    await page.screenshot({ path: 'test-results/home-phone.png' });
    await page.getByRole('button', { name: 'Open menu' }).click();
    await expect(page.getByRole('button', { name: /New chat/ })).toBeInViewport();
    await page.waitForTimeout(400);
    await page.screenshot({ path: 'test-results/menu-phone.png' });
  });
});

test('model output with HTML and javascript: links renders inert', async ({ page }) => {
  const upstream = await startScriptedUpstream([
    'Here <img src=x onerror=alert(1)>',
    ' and <script>alert(2)</script>',
    ' and [click me](javascript:alert(3))',
    '\n\n```html\n<script>alert(4)</script>\n```\n',
  ]);
  const app = await startApp({ APP__LLM__BASE_URL: upstream.baseUrl, APP__LLM__MODEL: 'scripted' });
  try {
    const dialogs = [];
    page.on('dialog', async (dialog) => { dialogs.push(dialog.message()); await dialog.dismiss(); });
    await page.goto(app.url);
    await send(page, 'Show me something dangerous');
    const markdown = answer(page).locator('.markdown');
    await expect(answer(page).locator('.meta')).toContainText('tokens');
    await expect(markdown).toContainText('<img src=x onerror=alert(1)>');
    await expect(markdown).toContainText('<script>alert(2)</script>');
    expect(await markdown.locator('script').count()).toBe(0);
    expect(await markdown.locator('img').count()).toBe(0);
    expect(await page.locator('.message script, .message img, .message [onerror]').count()).toBe(0);
    const link = markdown.getByText('click me');
    await expect(link).toBeVisible();
    expect(await link.getAttribute('href')).toBeNull();
    await link.click();
    // The code block shows the script as text, with a working Copy button.
    await expect(markdown.locator('pre code')).toContainText('<script>alert(4)</script>');
    await expect(markdown.getByRole('button', { name: 'Copy code' })).toBeVisible();
    await page.reload();
    await expect(answer(page).locator('.markdown')).toContainText('<script>alert(2)</script>');
    expect(await page.locator('.message script, .message img').count()).toBe(0);
    await page.waitForTimeout(500);
    expect(dialogs).toEqual([]);
  } finally {
    app.stop();
    upstream.stop();
  }
});
