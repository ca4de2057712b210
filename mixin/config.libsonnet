{
  _config+:: {
    // Selects the exporter's scrape job. Only expressions that read a metric other exporters share need
    // it: `up` in NorthflankExporterDown. (Every other series of this exporter starts with northflank_
    // and carries the job label through all joins.) Set it to the job of your scrape configuration, e.g.
    // 'job="northflank-backup-exporter"' or 'job="nbe", cluster="prod"'. Any other value also narrows
    // the dashboard's Job variable to the jobs it selects.
    exporterSelector: 'job=~".*northflank.*"',

    // Where each alert's runbook_url points: %s is the alert name in lower case (the anchor of its
    // section in docs/runbook.md). Point it at your own copy of the runbook if you keep one.
    runbookURLPattern: 'https://github.com/northflank-backup-exporter/northflank-backup-exporter/blob/main/docs/runbook.md#%s',

    // The dashboard: its tags, time zone ('' = the viewer's, 'utc', 'browser') and refresh interval.
    dashboardTags: ['northflank', 'backups', 'databases'],
    dashboardTimezone: '',
    dashboardRefresh: '1m',
  },
}
