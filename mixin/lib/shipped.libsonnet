// The shipped files, parsed: prometheus/alerts.yml, prometheus/rules.yml and
// grafana/northflank-backups.json stay the single source of truth, and the mixin only applies _config.
{
  alerts: std.parseYaml(importstr '../../prometheus/alerts.yml'),
  rules: std.parseYaml(importstr '../../prometheus/rules.yml'),
  dashboard: std.parseJson(importstr '../../grafana/northflank-backups.json'),

  // The exporter selector the shipped files are written with (the default of _config.exporterSelector).
  exporterSelector: 'job=~".*northflank.*"',

  // An expression with the shipped selector replaced by `selector`, wherever it is a whole matcher list
  // or the first matcher of one.
  withSelector(expr, selector)::
    local shipped = self.exporterSelector;
    if selector == shipped then expr
    else std.strReplace(
      std.strReplace(expr, '{' + shipped + '}', '{' + selector + '}'),
      '{' + shipped + ',',
      '{' + selector + ','
    ),

  // A rule file with `f` applied to every rule.
  mapRules(file, f):: file {
    groups: [group { rules: [f(rule) for rule in group.rules] } for group in file.groups],
  },
}
