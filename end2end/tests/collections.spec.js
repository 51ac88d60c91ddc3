// Collections in the browser: an admin makes a shared collection, uploads
// into it (and a new version), and lets a second account read it; that
// member searches only it from the composer, gets an answer whose citation
// names the document and the collection, and votes it down; the admin sees
// the document among the dashboard's weak sources. An account that isn't a
// member never sees the collection.
const path = require('path');
const { test, expect } = require('@playwright/test');
const { startApp, startScriptedUpstream } = require('./helpers');

const FIXTURES = path.resolve(__dirname, '..', '..', 'tests', 'fixtures', 'docs');
const answer = (page) => page.locator('article.message.assistant').last();
const composer = (page) => page.getByRole('textbox', { name: 'Message' });
const scopeSummary = (page) => page.locator('.scope-picker summary');
const PHONE = { width: 390, height: 844 };

async function send(page, text) {
  await composer(page).fill(text);
  await composer(page).press('Enter');
}

// A fresh browser context signed up as `username` (the first is admin).
async function signUp(browser, url, username) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${url}/signup`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill('correct horse');
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.locator('.account')).toContainText(username);
  return { context, page };
}

test.describe.serial('collections', () => {
  let upstream;
  let app;
  test.beforeAll(async () => {
    upstream = await startScriptedUpstream(['Water the runner beans ', 'every second evening [1].']);
    app = await startApp({ APP__LLM__BASE_URL: upstream.baseUrl, APP__LLM__MODEL: 'scripted' });
  });
  test.afterAll(() => { app && app.stop(); upstream && upstream.stop(); });

  test('a member searches a shared collection, cites it and votes; the admin sees the weak source', async ({ browser }) => {
    test.setTimeout(300_000);
    const admin = await signUp(browser, app.url, 'ada');
    await expect(admin.page.locator('.account .badge')).toHaveText('admin');
    const member = await signUp(browser, app.url, 'bea');
    const outsider = await signUp(browser, app.url, 'carl');

    // The admin makes "HR Handbook"; its access settings open at once.
    const page = admin.page;
    await page.goto(`${app.url}/documents`);
    await page.getByLabel('Collection name').fill('HR Handbook');
    await page.getByRole('button', { name: 'Create collection' }).click();
    const card = page.locator('section.collection[data-name="HR Handbook"]');
    await expect(card).toContainText('Owner: ada');
    await expect(card).toContainText('0 documents');
    await expect(page.locator('section.collection[data-name="My documents"]')).toContainText('Private');

    // bea may read it.
    await card.getByLabel('Add member', { exact: true }).fill('bea');
    await card.getByRole('button', { name: 'Add', exact: true }).click();
    await expect(card.locator('li.member[data-username="bea"]')).toBeVisible();
    await expect(card.getByLabel('Access of bea')).toHaveValue('read');
    // An unknown account is refused with a reason.
    await card.getByLabel('Add member', { exact: true }).fill('nobody-here');
    await card.getByRole('button', { name: 'Add', exact: true }).click();
    await expect(card.locator('.form-error').first()).toContainText('nobody-here');

    // A file uploaded into it, then a new version of it.
    await page.getByLabel('Upload to').selectOption({ label: 'HR Handbook' });
    await page.locator('input.file-input').setInputFiles([path.join(FIXTURES, 'garden-guide.md')]);
    const upload = page.locator('.upload-tray li.upload').last();
    await expect(upload).toHaveAttribute('data-stage', 'indexed', { timeout: 120_000 });
    const row = page.locator('tr.document', { hasText: 'garden-guide.md' });
    await expect(row.locator('.doc-collection')).toHaveText('HR Handbook');
    await expect(card).toContainText('1 document');
    await expect(row.locator('.version-badge')).toHaveCount(0);

    const fs = require('fs');
    const newer = fs.readFileSync(path.join(FIXTURES, 'garden-guide.md'), 'utf8') + '\n\nRevised: mulch the beds in May.\n';
    await row.locator('input.replace-input').setInputFiles({ name: 'garden-guide.md', mimeType: 'text/markdown', buffer: Buffer.from(newer) });
    await expect(page.locator('.upload-tray li.upload').last()).toHaveAttribute('data-stage', 'indexed', { timeout: 120_000 });
    await expect(row.locator('.version-badge')).toHaveText('v2');
    await expect(page.locator('tr.document')).toHaveCount(1);
    await row.getByRole('button', { name: 'Versions of garden-guide.md' }).click();
    const versions = page.getByRole('group', { name: 'Versions of garden-guide.md' });
    await expect(versions.locator('li.version')).toHaveCount(2);
    await expect(versions.locator('li.version').first()).toContainText('current');
    // The page scrolls inside the layout: a tall window shows all of it.
    await page.setViewportSize({ width: 1280, height: 1400 });
    await page.screenshot({ path: 'test-results/collections-documents.png' });
    await page.setViewportSize({ ...PHONE, height: 2000 });
    await page.waitForTimeout(500);
    await page.screenshot({ path: 'test-results/collections-documents-phone.png' });

    // bea searches only the shared collection.
    const reader = member.page;
    await expect(scopeSummary(reader)).toContainText('Search: All documents');
    await scopeSummary(reader).click();
    await expect(reader.getByRole('checkbox', { name: 'All documents' })).toBeChecked();
    await reader.getByRole('checkbox', { name: 'HR Handbook' }).check();
    await expect(scopeSummary(reader)).toContainText('Search: HR Handbook');
    await expect(reader.getByRole('checkbox', { name: 'All documents' })).not.toBeChecked();
    await reader.screenshot({ path: 'test-results/collections-picker.png' });
    await reader.getByRole('button', { name: 'Done' }).click();
    await expect(reader.locator('.scope-options')).toBeHidden();

    await send(reader, 'How often should the runner beans be watered?');
    await expect(answer(reader).locator('.meta')).toContainText('tokens', { timeout: 60_000 });
    const chip = answer(reader).locator('.source-chip').first();
    await expect(chip).toContainText('garden-guide.md');
    await expect(chip.locator('.source-collection')).toContainText('HR Handbook');
    await chip.click();
    await expect(reader.getByRole('dialog').locator('footer')).toContainText('in HR Handbook');
    await reader.keyboard.press('Escape');

    // The conversation keeps its scope: after a reload the picker shows it.
    await reader.reload();
    await expect(scopeSummary(reader)).toContainText('Search: HR Handbook');
    await answer(reader).hover();
    await answer(reader).getByRole('button', { name: 'Bad answer' }).click();
    await expect(answer(reader).getByRole('button', { name: 'Bad answer' })).toHaveAttribute('aria-pressed', 'true');
    await reader.setViewportSize(PHONE);
    // Let the drawer finish sliding out of view.
    await reader.waitForTimeout(500);
    await scopeSummary(reader).click();
    await expect(reader.getByRole('checkbox', { name: 'HR Handbook' })).toBeChecked();
    await reader.screenshot({ path: 'test-results/collections-picker-phone.png' });
    await reader.keyboard.press('Escape');

    // A new chat searches everything again.
    await reader.setViewportSize({ width: 1280, height: 800 });
    await reader.getByRole('button', { name: 'New chat' }).click();
    await expect(scopeSummary(reader)).toContainText('Search: All documents');

    // carl is no member: the picker offers only their own documents.
    const other = outsider.page;
    await expect(scopeSummary(other)).toContainText('Search: All documents');
    await scopeSummary(other).click();
    await expect(other.getByRole('checkbox', { name: 'My documents' })).toBeVisible();
    await expect(other.getByRole('checkbox', { name: 'HR Handbook' })).toHaveCount(0);
    await other.goto(`${app.url}/documents`);
    await expect(other.locator('section.collection[data-name="My documents"]')).toBeVisible();
    await expect(other.locator('section.collection[data-name="HR Handbook"]')).toHaveCount(0);

    // The admin finds the document among the weak sources, with the down-vote.
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.goto(`${app.url}/admin`);
    const weakHeading = page.getByRole('heading', { name: 'Weak sources', exact: true });
    await expect(weakHeading).toBeVisible();
    const weak = page.locator('section', { has: weakHeading });
    const weakRow = weak.locator('tr', { hasText: 'garden-guide.md' }).first();
    await expect(weakRow).toBeVisible();
    await expect(weakRow).toContainText('1 down');

    for (const who of [admin, member, outsider]) await who.context.close();
  });

  test('an admin lets an account make shared collections', async ({ browser }) => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${app.url}/login`);
    await page.getByLabel('Username').fill('ada');
    await page.getByLabel('Password').fill('correct horse');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect(page.locator('.account')).toContainText('ada');
    await page.goto(`${app.url}/admin/users`);
    const share = page.getByRole('checkbox', { name: 'bea may share' });
    await expect(share).not.toBeChecked();
    await expect(page.getByRole('checkbox', { name: 'ada may share' })).toBeDisabled();
    await share.check();
    await page.reload();
    await expect(page.getByRole('checkbox', { name: 'bea may share' })).toBeChecked();
    await context.close();

    // bea can now make one (and carl still can't).
    const bea = await browser.newContext();
    const beaPage = await bea.newPage();
    await beaPage.goto(`${app.url}/login`);
    await beaPage.getByLabel('Username').fill('bea');
    await beaPage.getByLabel('Password').fill('correct horse');
    await beaPage.getByRole('button', { name: 'Sign in' }).click();
    await expect(beaPage.locator('.account')).toContainText('bea');
    await beaPage.goto(`${app.url}/documents`);
    await beaPage.getByLabel('Collection name').fill('Team notes');
    await beaPage.getByRole('button', { name: 'Create collection' }).click();
    await expect(beaPage.locator('section.collection[data-name="Team notes"]')).toContainText('You manage it');
    // She reads the admin's collection but can't change its documents.
    await expect(beaPage.locator('section.collection[data-name="HR Handbook"]')).toContainText('You can read');
    await expect(beaPage.getByRole('button', { name: 'Replace garden-guide.md' })).toHaveCount(0);
    await bea.close();
  });
});
