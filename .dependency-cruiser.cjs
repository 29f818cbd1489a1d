/**
 * Layer rules (docs/architecture.md): data flows channel → protocol → engine → gateway → sandbox.
 * Run by .ci/run as `npm run depcruise`.
 */
module.exports = {
  forbidden: [
    {
      name: 'protocol-is-pure',
      comment: 'src/protocol/ turns bytes into messages: no filesystem, no sockets, no engine.',
      severity: 'error',
      from: { path: '^src/protocol/' },
      to: { path: '^(node:)?(fs|fs/promises|net|child_process|dgram|http|https|tls)$|^src/(engine|sandbox|gateway|ssh|config|policy|ops|relay)/' },
    },
    {
      name: 'protocol-reaches-no-io',
      comment: 'Not even through a module it imports (the codecs use src/patches/ for native handles, not I/O).',
      severity: 'error',
      from: { path: '^src/protocol/' },
      to: { path: '^(node:)?(fs|fs/promises|net|child_process|dgram|http|https|tls)$', reachable: true },
    },
    {
      name: 'only-sandbox-touches-the-filesystem',
      comment: 'During a session all filesystem access goes through src/sandbox (the gateway for changes).',
      severity: 'error',
      from: { path: '^src/(engine|protocol|policy|gateway)/' },
      to: { path: '^(node:)?(fs|fs/promises)$' },
    },
    {
      name: 'config-does-not-import-ssh',
      severity: 'error',
      from: { path: '^src/config/' },
      to: { path: '^src/ssh/' },
    },
    {
      name: 'engine-does-not-reach-up',
      comment: 'The roles know nothing of SSH, config files or operations.',
      severity: 'error',
      from: { path: '^src/(engine|gateway|sandbox|protocol)/' },
      to: { path: '^src/(ssh|config|ops|cli)' },
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'], extensions: ['.ts', '.js'] },
  },
};
