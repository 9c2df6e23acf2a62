//! Parsing the values of list parameters: sort keys, ranges, `op:value`
//! expressions, dates and quoted lists.

use super::*;

pub(super) fn sort_key(key: &str) -> ApiResult<&'static str> {
    static_name(&SORT_KEYS, key).ok_or_else(|| {
        ApiError::bad_request(format!(
            "Invalid sort key: {key}. It must be one of the following: {}.",
            SORT_KEYS.join(", ")
        ))
    })
}

pub(super) fn range_param(name: &str) -> Option<(&'static str, CmpOp)> {
    if let Some(base) = name.strip_suffix("_min") {
        static_name(&RANGE_COLUMNS, base).map(|c| (c, CmpOp::Gte))
    } else if let Some(base) = name.strip_suffix("_max") {
        static_name(&RANGE_COLUMNS, base).map(|c| (c, CmpOp::Lte))
    } else {
        None
    }
}

/// Splits `op:value` the way Glance does: a value that parses as a date is taken whole.
pub(super) fn split_op(expr: &str) -> (&str, &str) {
    match expr.split_once(':') {
        Some((op, rest)) if Timestamp::parse(expr).is_none() => (op, rest),
        _ => ("eq", expr),
    }
}

pub(super) fn op_filter(col: &'static str, expr: &str) -> ApiResult<Filter> {
    match split_op(expr) {
        ("in", list) => Ok(Filter::In(col, split_quoted_list(list)?)),
        ("eq", v) => Ok(Filter::Equals(col, v.to_string())),
        (op, _) => Err(ApiError::bad_request(format!(
            "Unable to filter by unknown operator '{op}'."
        ))),
    }
}

pub(super) fn time_filter(col: &'static str, expr: &str) -> ApiResult<Filter> {
    let (op, value) = split_op(expr);
    let op = match op {
        "eq" => CmpOp::Eq,
        "neq" => CmpOp::Neq,
        "gt" => CmpOp::Gt,
        "gte" => CmpOp::Gte,
        "lt" => CmpOp::Lt,
        "lte" => CmpOp::Lte,
        _ => {
            return Err(ApiError::bad_request(
                "Unable to filter on a unknown operator.",
            ))
        }
    };
    let ts = Timestamp::parse(value).ok_or_else(|| {
        ApiError::bad_request(format!(
            "Bad \"{col}\" query filter format. Use ISO 8601 DateTime notation."
        ))
    })?;
    Ok(Filter::Time(col, op, ts))
}

/// Splits an `in:` list on commas; double quotes protect commas (`"a,b",c`).
fn split_quoted_list(value: &str) -> ApiResult<Vec<String>> {
    let invalid = |why: &str| ApiError::bad_request(format!("Invalid filter value {value}. {why}"));
    let chars: Vec<char> = value.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let mut item = String::new();
        if chars.get(i) == Some(&'"') {
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(invalid("The quote is not closed.")),
                    Some('\\') if i + 1 < chars.len() => {
                        item.push(chars[i + 1]);
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        item.push(*c);
                        i += 1;
                    }
                }
            }
            if i < chars.len() && chars[i] != ',' {
                return Err(invalid("There is no comma after closing quotation mark."));
            }
        } else {
            while i < chars.len() && chars[i] != ',' {
                if chars[i] == '"' {
                    return Err(invalid("There is no comma before opening quotation mark."));
                }
                item.push(chars[i]);
                i += 1;
            }
        }
        out.push(item);
        if i >= chars.len() {
            break;
        }
        i += 1; // the comma
    }
    Ok(out)
}
