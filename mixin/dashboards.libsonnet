local shipped = import 'lib/shipped.libsonnet';

{
  grafanaDashboards+:: {
    'northflank-backups.json': shipped.dashboard {
      tags: $._config.dashboardTags,
      timezone: $._config.dashboardTimezone,
      refresh: $._config.dashboardRefresh,
      templating+: {
        list: [
          // The shipped dashboard lists every job that exposes northflank_up (only this exporter does);
          // a selector of your own narrows the Job variable to the jobs it selects.
          if variable.name == 'job' && $._config.exporterSelector != shipped.exporterSelector then
            variable {
              query: std.strReplace(super.query, 'northflank_up,', 'northflank_up{' + $._config.exporterSelector + '},'),
              definition: self.query,
            }
          else variable
          for variable in super.list
        ],
      },
    },
  },
}
