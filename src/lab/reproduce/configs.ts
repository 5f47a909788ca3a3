// The configurations of section 5 of the SMFS paper, the tagged level, and the two baselines the
// paper lacked, as lab setups: which network (gateways or the plain WAN, the hosts' TCP), which
// acknowledgement level, whether the primary listens to the gateways' feedback, where the
// clients run. docs/reproduction.md has the paper's definitions beside these.
export type ConfigName =
  | 'local-sync' | 'remote-sync' | 'network-sync' | 'local-sync+FEC' | 'remote-sync+FEC'
  | 'tagged' | 'tcp-bbr' | 'tcp-cubic';

export type Level = 'local' | 'network' | 'remote' | 'tagged';
export type CongestionControl = 'reno' | 'bbr' | 'cubic';

export interface Configuration {
  name: ConfigName;
  gateways: boolean;       // Maelstrom gateways at both sites, (r, c) of the experiment
  feedback: boolean;       // the primary is given the gateways' feedback (--gateway): network-sync
  level: Level;
  // Reno with the lab's tuning (tcp_reordering 100, no saved metrics, no slow start after idle),
  // as the paper's experiments ran; or the kernel's defaults with this congestion control.
  tcp: 'lab-reno' | { defaults: CongestionControl };
  clientSite: boolean;     // the testers at a third site that outlives the primary's (tagged)
  inPaper: boolean;
  summary: string;
}

export const CONFIGS: Record<ConfigName, Configuration> = {
  'local-sync': {
    name: 'local-sync', gateways: false, feedback: false, level: 'local', tcp: 'lab-reno', clientSite: false, inPaper: true,
    summary: 'answered once written here and taken by the kernel for the mirror; plain WAN',
  },
  'remote-sync': {
    name: 'remote-sync', gateways: false, feedback: false, level: 'remote', tcp: 'lab-reno', clientSite: false, inPaper: true,
    summary: 'answered once the mirror has written it; plain WAN',
  },
  'network-sync': {
    name: 'network-sync', gateways: true, feedback: true, level: 'network', tcp: 'lab-reno', clientSite: false, inPaper: true,
    summary: "answered once gateway A reports the data and its repairs on the WAN",
  },
  'local-sync+FEC': {
    name: 'local-sync+FEC', gateways: true, feedback: false, level: 'local', tcp: 'lab-reno', clientSite: false, inPaper: true,
    summary: 'local-sync through the gateways, their feedback unused',
  },
  'remote-sync+FEC': {
    name: 'remote-sync+FEC', gateways: true, feedback: false, level: 'remote', tcp: 'lab-reno', clientSite: false, inPaper: true,
    summary: 'remote-sync through the gateways, their feedback unused',
  },
  tagged: {
    name: 'tagged', gateways: true, feedback: false, level: 'tagged', tcp: 'lab-reno', clientSite: true, inPaper: false,
    summary: 'answered as local-sync with a tag; the testers (at a third site) keep each group until the mirror has it; through the gateways, their feedback unused',
  },
  'tcp-bbr': {
    name: 'tcp-bbr', gateways: false, feedback: false, level: 'remote', tcp: { defaults: 'bbr' }, clientSite: false, inPaper: false,
    summary: 'remote-sync over plain TCP with BBR, hosts at kernel defaults, no gateways',
  },
  'tcp-cubic': {
    name: 'tcp-cubic', gateways: false, feedback: false, level: 'remote', tcp: { defaults: 'cubic' }, clientSite: false, inPaper: false,
    summary: 'remote-sync over plain TCP with cubic, hosts at kernel defaults, no gateways',
  },
};

export const ALL_CONFIGS = Object.keys(CONFIGS) as ConfigName[];
