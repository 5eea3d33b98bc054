import type { PluginHost } from '../core/plugins/host.ts';
import type { Capability } from '../core/access.ts';

export interface NavItem {
  label: string;
  href: string;
}

/**
 * The dashboard navigation: core sections, then pages plugins add (the Outbox is channel-outbox's),
 * without what the member's role cannot open (core/access.ts decides; the server checks regardless).
 */
export function navItems(plugins: PluginHost, can: (capability: Capability) => boolean = () => true): NavItem[] {
  const pluginPages = plugins
    .dashboardPages()
    .filter((p) => p.page.nav && plugins.isActive(p.pluginId))
    .map((p) => ({ label: p.page.nav!.label, href: `/app/p/${p.pluginId}${p.page.path === '/' ? '' : p.page.path}` }));
  const outbox = pluginPages.find((p) => p.label === 'Outbox');
  const manages = can('settings.manage');
  const items: (NavItem | false)[] = [
    { label: 'Links', href: '/app/links' },
    { label: 'Requests', href: '/app/requests' },
    { label: 'Transactions', href: '/app/payments' },
    can('records.read_all') && { label: 'Subscriptions', href: '/app/subscriptions' },
    can('reports.read') && { label: 'Reports', href: '/app/reports/reconciliation' },
    { label: 'Customers', href: '/app/customers' },
    { label: 'Products', href: '/app/products' },
    { label: 'Coupons', href: '/app/coupons' },
    can('catalog.manage') && { label: 'Tags', href: '/app/tags' },
    can('reports.read') && { label: 'Activity', href: '/app/activity' },
    ...(can('records.read_all') ? [...(outbox ? [outbox] : []), ...pluginPages.filter((p) => p !== outbox)] : []),
    manages && { label: 'Plugins', href: '/app/plugins' },
    manages && { label: 'Payments', href: '/app/settings/payments' },
    can('team.manage') && { label: 'Team', href: '/app/settings/team' },
    manages ? { label: 'Settings', href: '/app/settings' } : { label: 'Your account', href: '/app/settings' },
  ];
  return items.filter((i): i is NavItem => i !== false);
}
