import type { PluginHost } from '../core/plugins/host.ts';

export interface NavItem {
  label: string;
  href: string;
}

/** The dashboard navigation: core sections, then pages plugins add (the Outbox is channel-outbox's). */
export function navItems(plugins: PluginHost): NavItem[] {
  const pluginPages = plugins
    .dashboardPages()
    .filter((p) => p.page.nav && plugins.isActive(p.pluginId))
    .map((p) => ({ label: p.page.nav!.label, href: `/app/p/${p.pluginId}${p.page.path === '/' ? '' : p.page.path}` }));
  const outbox = pluginPages.find((p) => p.label === 'Outbox');
  return [
    { label: 'Links', href: '/app/links' },
    { label: 'Requests', href: '/app/requests' },
    { label: 'Transactions', href: '/app/payments' },
    { label: 'Reports', href: '/app/reports/reconciliation' },
    { label: 'Customers', href: '/app/customers' },
    { label: 'Products', href: '/app/products' },
    { label: 'Tags', href: '/app/tags' },
    { label: 'Activity', href: '/app/activity' },
    ...(outbox ? [outbox] : []),
    ...pluginPages.filter((p) => p !== outbox),
    { label: 'Plugins', href: '/app/plugins' },
    { label: 'Payments', href: '/app/settings/payments' },
    { label: 'Settings', href: '/app/settings' },
  ];
}
