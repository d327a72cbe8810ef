// The reading site's menu (narrow screens) and search (Pagefind: it fetches its index, which file:// forbids).
document.querySelector('.site-menu').addEventListener('click', e => {
  e.currentTarget.setAttribute('aria-expanded', document.body.classList.toggle('site-menu-open'));
});
if (location.protocol === 'file:') {
  document.getElementById('site-search').innerHTML = '<p class="site-note">Search needs the site served, not opened ' +
    'as a file: <code>python -m http.server -d _site</code>, then <a href="http://localhost:8000/">localhost:8000</a>.</p>';
} else {
  new PagefindUI({element: '#site-search', showSubResults: true, showImages: false, resetStyles: false});
}
