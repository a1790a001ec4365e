//! Reading a connector's properties as Kafka Connect plugins do: trimmed strings, numbers and
//! booleans with defaults, include/exclude lists of regular expressions, and every problem
//! collected (not just the first) for `config/validate`.

use regex::Regex;

use crate::plugin::{missing_required, Config, ConfigDef, ConfigIssue};

/// A list of regular expressions matched against a whole name, as Debezium's and
/// MirrorMaker's include and exclude lists are (comma-separated).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
}

impl Filter {
    pub fn new(include: Option<&str>, exclude: Option<&str>) -> Result<Filter, String> {
        let compile = |list: Option<&str>| -> Result<Vec<Regex>, String> {
            list.unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Regex::new(&format!("^(?:{s})$")).map_err(|e| format!("'{s}': {e}")))
                .collect()
        };
        Ok(Filter {
            include: compile(include)?,
            exclude: compile(exclude)?,
        })
    }

    /// Included (an empty include list includes everything) and not excluded.
    pub fn accepts(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|r| r.is_match(name)))
            && !self.exclude.iter().any(|r| r.is_match(name))
    }

    /// Whether an include pattern names `name` (for a list that only ever excludes).
    pub fn names(&self, name: &str) -> bool {
        self.include.iter().any(|r| r.is_match(name))
    }
}

/// A config being read, with the problems found so far.
pub struct Props<'a> {
    config: &'a Config,
    issues: Vec<ConfigIssue>,
}

impl<'a> Props<'a> {
    /// Starts with the required properties `defs` names that are missing.
    pub fn new(config: &'a Config, defs: &[ConfigDef]) -> Props<'a> {
        Props {
            config,
            issues: missing_required(defs, config),
        }
    }

    /// The trimmed value, if set and not blank.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.config
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The trimmed value, or "".
    pub fn string(&self, key: &str) -> String {
        self.get(key).unwrap_or_default().to_string()
    }

    pub fn issue(&mut self, name: &str, message: String) {
        self.issues.push(ConfigIssue {
            name: name.to_string(),
            message,
        });
    }

    /// A number from 0 to `max`, `default` when unset.
    pub fn number(&mut self, key: &str, default: u64, max: u64) -> u64 {
        match self.get(key).map(str::parse::<u64>) {
            None => default,
            Some(Ok(n)) if n <= max => n,
            Some(_) => {
                let value = self.get(key).unwrap_or("");
                self.issue(
                    key,
                    format!("Invalid value {value} for configuration {key}: must be a number from 0 to {max}"),
                );
                default
            }
        }
    }

    pub fn boolean(&mut self, key: &str, default: bool) -> bool {
        match self.get(key).map(str::to_ascii_lowercase).as_deref() {
            None => default,
            Some("true") => true,
            Some("false") => false,
            Some(other) => {
                self.issue(
                    key,
                    format!("Invalid value {other} for configuration {key}: must be true or false"),
                );
                default
            }
        }
    }

    /// The include list `inc` and exclude list `exc`, each defaulting as given.
    pub fn filter(
        &mut self,
        inc: &str,
        inc_default: Option<&str>,
        exc: &str,
        exc_default: Option<&str>,
    ) -> Filter {
        let (i, e) = (self.get(inc).or(inc_default), self.get(exc).or(exc_default));
        match Filter::new(i, e) {
            Ok(f) => f,
            Err(e) => {
                self.issue(inc, format!("Invalid regular expression {e}"));
                Filter::default()
            }
        }
    }

    /// `value` if no problem was found, else every problem.
    pub fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, Vec<ConfigIssue>> {
        if self.issues.is_empty() {
            Ok(value())
        } else {
            Err(self.issues)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_whole_names_and_exclusions_win() {
        let f = Filter::new(Some("orders.*, pay"), Some(".*-internal")).unwrap();
        assert!(f.accepts("orders"));
        assert!(f.accepts("orders.eu"));
        assert!(f.accepts("pay"));
        assert!(!f.accepts("payments"), "a pattern matches the whole name");
        assert!(!f.accepts("orders-internal"));
        assert!(Filter::new(None, None).unwrap().accepts("anything"));
        assert!(Filter::new(Some("("), None).is_err());
    }

    #[test]
    fn every_problem_is_reported() {
        let defs = [ConfigDef {
            name: "needed",
            required: true,
            default: None,
            documentation: "",
        }];
        let config: Config = [("n", "x"), ("b", "maybe")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut p = Props::new(&config, &defs);
        assert_eq!(p.number("n", 7, 10), 7);
        assert!(p.boolean("b", true));
        let issues = p.finish(|| ()).unwrap_err();
        let names: Vec<&str> = issues.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["needed", "n", "b"]);
    }
}
