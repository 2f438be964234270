#include <subsync/sync/history.hpp>
#include <subsync/sync/parse.hpp>
#include <subsync/sync/snapshot.hpp>
#include <subsync/sync/time.hpp>

#include <SQLiteCpp/Statement.h>
#include <fmt/format.h>

#include <map>
#include <stdexcept>

namespace subsync::sync {

std::optional<as_of_point> parse_as_of(std::string_view text) {
    if (!text.empty() && text.size() < 19 &&
        std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        std::int64_t id = 0;
        for (char c : text) id = id * 10 + (c - '0');
        return as_of_point{id, std::nullopt};
    }
    if (auto t = parse_iso8601(text)) return as_of_point{std::nullopt, *t};
    return std::nullopt;
}

namespace {

struct item_state {
    bool present = false;
    std::vector<cell> cells;
};

std::size_t column_index(std::span<const column> cols, std::string_view name) {
    for (std::size_t i = 0; i < cols.size(); ++i)
        if (cols[i].name == name) return i;
    throw std::runtime_error(fmt::format("changes: unknown field \"{}\"", name));
}

// A changed field's old value back to a cell, through the same parser as an
// API answer: wrap it in a minimal item object and take that column.
cell field_cell(source_kind table, std::span<const column> cols, std::size_t index,
                const std::optional<std::string>& literal) {
    if (!literal) return cell{};  // the field was absent
    std::string object = table == source_kind::purchased_groups ? R"({"id":"x",)" : R"({"resource_id":"x",)";
    append_json_string(object, cols[index].name);
    object += ':';
    object += *literal;
    object += '}';
    auto cells = parse_item_cells(table, object);
    if (!cells) throw std::runtime_error("changes: cannot read a stored value: " + cells.error().message);
    return (*cells)[index];
}

}  // namespace

std::vector<table_row> rows_as_of(SQLite::Database& db, source_kind table, const as_of_point& point,
                                  const std::optional<std::string>& account) {
    const auto cols = columns(table);
    std::string names;
    for (const auto& c : cols) names += fmt::format("{}, ", c.name);
    std::map<std::pair<std::string, std::string>, item_state> items;
    {
        SQLite::Statement q(db, fmt::format("SELECT account, item_key, {}absent_mask, removed_at IS NULL FROM {}{}",
                                            names, to_string(table), account ? " WHERE account = ?" : ""));
        if (account) q.bind(1, *account);
        while (q.executeStep()) {
            item_state s;
            read_cells(q, cols, 2, s.cells);
            s.present = q.getColumn(static_cast<int>(cols.size()) + 3).getInt() != 0;
            items.emplace(std::pair{q.getColumn(0).getString(), q.getColumn(1).getString()}, std::move(s));
        }
    }
    SQLite::Statement q(db, fmt::format("SELECT account, item_key, kind, field, old_value FROM changes "
                                        "WHERE source = ? AND {} > ?{} ORDER BY seq DESC",
                                        point.run_id ? "run_id" : "time", account ? " AND account = ?" : ""));
    q.bind(1, std::string(to_string(table)));
    q.bind(2, static_cast<std::int64_t>(point.run_id ? *point.run_id : point.time.value_or(0)));
    if (account) q.bind(3, *account);
    while (q.executeStep()) {
        auto it = items.find(std::pair{q.getColumn(0).getString(), q.getColumn(1).getString()});
        if (it == items.end()) continue;  // pruned with its history
        const auto kind = change_kind_named(q.getColumn(2).getText());
        if (!kind) throw std::runtime_error(fmt::format("changes: unknown kind \"{}\"", q.getColumn(2).getText()));
        item_state& s = it->second;
        if (*kind == change_kind::added) {
            s.present = false;
        } else if (*kind == change_kind::removed) {
            auto cells = parse_item_cells(table, q.getColumn(4).getString());
            if (!cells) throw std::runtime_error("changes: cannot read a removed item: " + cells.error().message);
            s.present = true;
            s.cells = std::move(*cells);
        } else {
            const auto index = column_index(cols, q.getColumn(3).getString());
            const auto old = q.getColumn(4);
            s.cells[index] = field_cell(table, cols, index,
                                        old.isNull() ? std::nullopt : std::optional<std::string>(old.getString()));
        }
    }
    std::vector<table_row> out;
    for (auto& [key, s] : items)
        if (s.present) out.push_back({key.first, key.second, std::move(s.cells)});
    return out;
}

void for_each_change(SQLite::Database& db, const change_filter& f, const std::function<void(const change_row&)>& fn) {
    std::string sql = "SELECT seq, run_id, time, account, source, item_key, kind, field, old_value, new_value "
                      "FROM changes WHERE 1 = 1";
    if (f.account) sql += " AND account = :account";
    if (f.source) sql += " AND source = :source";
    if (f.item) sql += " AND item_key = :item";
    if (f.kind) sql += " AND kind = :kind";
    if (f.since) sql += " AND time >= :since";
    if (f.after_seq) sql += " AND seq > :after";
    sql += " ORDER BY seq";
    SQLite::Statement q(db, sql);
    if (f.account) q.bind(":account", *f.account);
    if (f.source) q.bind(":source", *f.source);
    if (f.item) q.bind(":item", *f.item);
    if (f.kind) q.bindNoCopy(":kind", to_string(*f.kind).data());
    if (f.since) q.bind(":since", static_cast<std::int64_t>(*f.since));
    if (f.after_seq) q.bind(":after", static_cast<std::int64_t>(*f.after_seq));
    auto opt = [](const SQLite::Column& c) {
        return c.isNull() ? std::nullopt : std::optional<std::string>(c.getString());
    };
    change_row r;
    while (q.executeStep()) {
        r.seq = q.getColumn(0).getInt64();
        r.run_id = q.getColumn(1).getInt64();
        r.time = q.getColumn(2).getInt64();
        r.account = q.getColumn(3).getString();
        r.source = q.getColumn(4).getString();
        r.item_key = q.getColumn(5).getString();
        const auto kind = change_kind_named(q.getColumn(6).getText());
        if (!kind) throw std::runtime_error(fmt::format("changes: unknown kind \"{}\"", q.getColumn(6).getText()));
        r.kind = *kind;
        r.field = opt(q.getColumn(7));
        r.old_value = opt(q.getColumn(8));
        r.new_value = opt(q.getColumn(9));
        fn(r);
    }
}

}  // namespace subsync::sync
