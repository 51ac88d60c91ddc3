// Regenerate, edit and branch; an answer that keeps streaming through a
// reload; the conversation list's search, rename, pin, share and delete.
const path = require('path');
const { test, expect } = require('@playwright/test');
const { startApp, startScriptedUpstream } = require('./helpers');

const FIXTURES = path.resolve(__dirname, '..', '..', 'tests', 'fixtures', 'docs');
const answer = (page) => page.locator('article.message.assistant').last();
const question = (page) => page.locator('article.message.user').last();
const composer = (page) => page.getByRole('textbox', { name: 'Message' });

async function send(page, text) {
  await composer(page).fill(text);
  await composer(page).press('Enter');
}

async function upload(page, name) {
  await page.locator('input.file-input').setInputFiles([path.join(FIXTURES, name)]);
  const row = page.locator('.upload-tray li.upload', { hasText: name });
  await expect(row).toHaveAttribute('data-stage', 'indexed', { timeout: 120_000 });
}

async function settled(page) {
  await expect(answer(page).locator('.meta')).toContainText('tokens', { timeout: 60_000 });
}

test.describe('versions and branches', () => {
  let app;
  let upstream;
  test.beforeAll(async () => {
    upstream = await startScriptedUpstream([
      ['First version: ', 'water every second evening [1].'],
      ['Second version, ', 'from the survey [1].'],
      ['An answer to ', 'the edited question [1].'],
    ]);
    app = await startApp({ APP__LLM__BASE_URL: upstream.baseUrl });
  });
  test.afterAll(() => { app && app.stop(); upstream && upstream.stop(); });

  test('regenerate shows 2/2 and switches text and sources; an edit branches and a reload keeps the branch', async ({ page }) => {
    test.setTimeout(300_000);
    await page.goto(app.url);
    await upload(page, 'garden-guide.md');
    await send(page, 'How often should the runner beans be watered?');
    await settled(page);
    await expect(answer(page).locator('.markdown')).toHaveText(/First version/);
    await expect(answer(page).locator('.source-chip').first()).toContainText('garden-guide.md');
    // Only a question and one answer: no switcher yet.
    await expect(page.locator('.versions')).toHaveCount(0);

    // The second version is grounded in other documents: the garden guide
    // is gone, the survey is there.
    const documents = await page.evaluate(async () => (await fetch('/api/documents')).json());
    for (const doc of documents) {
      await page.evaluate(async (id) => fetch(`/api/documents/${id}`, { method: 'DELETE' }), doc.id);
    }
    await upload(page, 'velloran-survey.pdf');

    await answer(page).getByRole('button', { name: 'Regenerate' }).click();
    await expect(answer(page).locator('.markdown')).toHaveText(/Second version/, { timeout: 60_000 });
    await settled(page);
    const versions = answer(page).locator('.versions');
    await expect(versions.locator('.version-position')).toHaveText('2/2');
    await expect(answer(page).locator('.source-chip').first()).toContainText('velloran-survey.pdf');
    await expect(answer(page).locator('.source-chip', { hasText: 'garden-guide.md' })).toHaveCount(0);
    await page.screenshot({ path: 'test-results/regenerated.png' });

    // Back to the first version: its own text and sources.
    await versions.getByRole('button', { name: 'Previous version' }).click();
    await expect(answer(page).locator('.version-position')).toHaveText('1/2');
    await expect(answer(page).locator('.markdown')).toHaveText(/First version/);
    await expect(answer(page).locator('.source-chip').first()).toContainText('garden-guide.md');
    await answer(page).getByRole('button', { name: 'Next version' }).click();
    await expect(answer(page).locator('.version-position')).toHaveText('2/2');
    await expect(answer(page).locator('.markdown')).toHaveText(/Second version/);

    // Edit the question in place: a new branch with its own answer.
    await question(page).getByRole('button', { name: 'Edit' }).click();
    const editor = page.getByRole('textbox', { name: 'Edit your question' });
    await expect(editor).toHaveValue('How often should the runner beans be watered?');
    await editor.fill('When was the Velloran bridge finished?');
    await editor.press('Enter');
    await expect(answer(page).locator('.markdown')).toHaveText(/edited question/, { timeout: 60_000 });
    await settled(page);
    await expect(question(page).locator('.user-text')).toHaveText('When was the Velloran bridge finished?');
    await expect(question(page).locator('.version-position')).toHaveText('2/2');

    // The old branch is still there, with its answers; it stays chosen
    // after a reload.
    await question(page).getByRole('button', { name: 'Previous version' }).click();
    await expect(question(page).locator('.user-text')).toHaveText('How often should the runner beans be watered?');
    await expect(answer(page).locator('.markdown')).toHaveText(/Second version/);
    await page.reload();
    await expect(question(page).locator('.user-text')).toHaveText('How often should the runner beans be watered?');
    await expect(question(page).locator('.version-position')).toHaveText('1/2');
    await expect(answer(page).locator('.version-position')).toHaveText('2/2');
    await page.screenshot({ path: 'test-results/branches.png' });
  });
});

test.describe('answers that outlive the tab', () => {
  const pieces = Array.from({ length: 40 }, (_, i) => `word${i} `);
  const whole = pieces.join('').trim();
  let app;
  let upstream;
  test.beforeAll(async () => {
    upstream = await startScriptedUpstream(pieces, { delayMs: 120 });
    app = await startApp({ APP__LLM__BASE_URL: upstream.baseUrl, APP__LLM__MAX_TOKENS: '400' });
  });
  test.afterAll(() => { app && app.stop(); upstream && upstream.stop(); });

  test('a reload while an answer streams shows the text so far and keeps it growing to the same end', async ({ page }) => {
    await page.goto(app.url);
    await send(page, 'Say forty words');
    await expect(answer(page).locator('.markdown')).toContainText('word5', { timeout: 30_000 });
    await page.reload();
    const text = answer(page).locator('.markdown');
    // Right after the reload: what was generated so far, still streaming.
    await expect(text).toContainText('word5', { timeout: 10_000 });
    const early = (await text.innerText()).trim();
    expect(whole.startsWith(early)).toBe(true);
    expect(early.length).toBeLessThan(whole.length);
    await expect(text).toHaveClass(/streaming/);
    // It keeps growing, live, to the same text as an uninterrupted run.
    await expect(text).toHaveText(whole, { timeout: 30_000 });
    await expect(text).not.toHaveClass(/streaming/);
    await page.reload();
    await expect(answer(page).locator('.markdown')).toHaveText(whole);
  });
});

test.describe('the conversation list', () => {
  let app;
  let upstream;
  test.beforeAll(async () => {
    upstream = await startScriptedUpstream([
      ['The zeppelin ', 'landed at Lakehurst.'],
      ['Bread needs ', 'yeast.'],
    ]);
    app = await startApp({ APP__LLM__BASE_URL: upstream.baseUrl });
  });
  test.afterAll(() => { app && app.stop(); upstream && upstream.stop(); });

  test('search finds a word of an answer; rename, pin, share and delete with a confirmation', async ({ page, browser }) => {
    await page.goto(app.url);
    await send(page, 'Tell me about airships');
    await settled(page);
    await page.getByRole('button', { name: 'New chat' }).click();
    await send(page, 'How do I bake?');
    await settled(page);

    const search = page.getByRole('searchbox', { name: 'Search conversations' });
    await search.fill('zeppelin');
    const hits = page.locator('.search-results li');
    await expect(hits).toHaveCount(1);
    await expect(hits.first().locator('.title')).toHaveText('Tell me about airships');
    await expect(hits.first().locator('mark')).toHaveText('zeppelin');
    await search.fill('');
    const items = page.locator('.conversation-list li.conversation');
    await expect(items).toHaveCount(2);

    // Rename and pin the older one: it goes to the top.
    const airships = items.filter({ hasText: 'Tell me about airships' });
    await airships.getByRole('button', { name: 'Conversation actions' }).click();
    await airships.getByRole('menuitem', { name: 'Rename' }).click();
    const title = page.getByRole('textbox', { name: 'New title' });
    await title.fill('Airships');
    await title.press('Enter');
    const renamed = items.filter({ hasText: 'Airships' });
    await renamed.getByRole('button', { name: 'Conversation actions' }).click();
    await renamed.getByRole('menuitem', { name: 'Pin' }).click();
    await expect(items.first()).toContainText('Airships');
    await expect(items.first().locator('.pin')).toBeVisible();

    // Share it: a stranger's browser sees it read-only; revoked, it is gone.
    await items.first().getByRole('button', { name: 'Conversation actions' }).click();
    await items.first().getByRole('menuitem', { name: 'Share link' }).click();
    const link = await page.getByRole('textbox', { name: 'Shared link' }).inputValue();
    expect(link).toMatch(/\/s\/[0-9a-f]{32}$/);
    const stranger = await browser.newContext();
    const shared = await stranger.newPage();
    const response = await shared.goto(link);
    expect(response.headers()['x-robots-tag']).toContain('noindex');
    await expect(shared.locator('.markdown')).toContainText('zeppelin landed');
    expect(await stranger.cookies()).toEqual([]);
    await page.getByRole('link', { name: 'Shared links' }).click();
    await page.getByRole('button', { name: 'Revoke' }).click();
    await expect(page.getByText('You have not shared any conversation.')).toBeVisible();
    expect((await shared.goto(link)).status()).toBe(404);
    await stranger.close();

    // Delete asks first.
    await page.goto(app.url);
    const baking = items.filter({ hasText: 'How do I bake?' });
    await baking.getByRole('button', { name: 'Conversation actions' }).click();
    await baking.getByRole('menuitem', { name: 'Delete' }).click();
    await baking.getByRole('button', { name: 'Cancel' }).click();
    await expect(items).toHaveCount(2);
    await baking.getByRole('button', { name: 'Conversation actions' }).click();
    await baking.getByRole('menuitem', { name: 'Delete' }).click();
    await baking.getByRole('button', { name: 'Delete' }).click();
    await expect(items).toHaveCount(1);
    await page.screenshot({ path: 'test-results/conversation-list.png' });
  });
});
