//! Statements Diesel's query builder cannot express for both backends
//! through diesel-async: multi-row INSERTs with a variable number of rows.

use super::{Db, Pool};

/// Rows per multi-row INSERT: far below SQLite's 32,766 and PostgreSQL's
/// 65,535 bound parameters, with up to seven columns a row.
pub const ROWS_PER_STATEMENT: usize = 1_000;

/// How the backend spells bind parameters. SQLite would accept `$N` too,
/// but as *named* parameters, looked up by name one by one: quadratic in a
/// statement with thousands of them.
#[derive(Clone, Copy)]
pub enum Placeholders {
    Dollar,
    Question,
}

impl Placeholders {
    pub fn of(db: &Db) -> Self {
        match db.pool() {
            Pool::Sqlite(_) => Placeholders::Question,
            Pool::Postgres(_) => Placeholders::Dollar,
        }
    }

    pub fn push(self, sql: &mut String, n: &mut usize) {
        *n += 1;
        match self {
            Placeholders::Dollar => {
                sql.push('$');
                sql.push_str(&n.to_string());
            }
            Placeholders::Question => sql.push('?'),
        }
    }
}

/// `INSERT INTO <target> VALUES ($1, …), (…) [RETURNING <returning>]` for
/// `rows` rows of `columns` values. Diesel's own batch insert does not reach
/// SQLite through diesel-async, and one statement per row would cost a
/// thread hop per row there; this one statement serves both backends.
pub fn multi_row_insert(
    style: Placeholders,
    target: &str,
    columns: usize,
    rows: usize,
    returning: &str,
) -> String {
    let mut sql = String::with_capacity(40 + target.len() + rows * columns * 6);
    sql.push_str("INSERT INTO ");
    sql.push_str(target);
    sql.push_str(" VALUES ");
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..columns {
            if c > 0 {
                sql.push_str(", ");
            }
            style.push(&mut sql, &mut n);
        }
        sql.push(')');
    }
    if !returning.is_empty() {
        sql.push_str(" RETURNING ");
        sql.push_str(returning);
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_row_insert_numbers_every_value() {
        assert_eq!(
            multi_row_insert(Placeholders::Dollar, "t (a, b)", 2, 2, "id"),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) RETURNING id"
        );
        assert_eq!(
            multi_row_insert(Placeholders::Question, "t (a)", 1, 2, ""),
            "INSERT INTO t (a) VALUES (?), (?)"
        );
    }
}
