// dataset::seeds(), from_file(), to_json() and the orders counters. No Beast here.

#include "subsync/emulator/server.hpp"

#include <simdjson.h>

#include <set>
#include <stdexcept>
#include <string_view>
#include <utility>

namespace subsync::emulator {

namespace {

// Seed 001 (APIG, "Querying the List of Purchased API Groups"): the three purchases of the
// example response, compact, keys in the documented order, values byte-for-byte.
constexpr std::string_view seed_purchases[] = {
    R"({"id":"615af8d9-f31d-4cdf-8807-b191dc969a07","group_id":"f0585333-5722-4878-b7fa-31ae00b6ae3a","group_name":"api_group_003","group_remark":"API group 003","group_domains":null,"quota_used":0,"quota_left":2000000000,"order_time":"2017-12-29T06:22:46Z","start_time":"2018-01-01T00:00:00Z","expire_time":"2019-01-01T00:00:00Z","app_key":"0e242685-661d-4254-a8bb-be9a92b04785","app_secret":"******"})",
    R"({"id":"9d0bdab1-a553-4bc9-be8c-a2e6c08e4d13","group_id":"02a8ab3c-b278-4de5-a096-852829671ae7","group_name":"api_group_002","group_remark":"API group 002","group_domains":null,"quota_used":0,"quota_left":2000000000,"order_time":"2017-12-29T06:22:46Z","start_time":"2018-01-01T00:00:00Z","expire_time":"2019-01-01T00:00:00Z","app_key":"0e242685-661d-4254-a8bb-be9a92b04785","app_secret":"******"})",
    R"({"id":"3f30d49b-220f-4b11-9e94-c2fd3c1cc587","group_id":"73c58022-f20d-495a-a188-85d718647f09","group_name":"api_group_001","group_remark":"API group 001","group_domains":null,"quota_used":0,"quota_left":2000000000,"order_time":"2017-12-29T06:16:03Z","start_time":"2018-01-01T00:00:00Z","expire_time":"2019-01-01T00:00:00Z","app_key":"0e242685-661d-4254-a8bb-be9a92b04785","app_secret":"******"})",
};

struct seed_ids {
    std::string_view id, group_id, group_name;
};
constexpr seed_ids seed_purchase_ids[] = {
    {"615af8d9-f31d-4cdf-8807-b191dc969a07", "f0585333-5722-4878-b7fa-31ae00b6ae3a", "api_group_003"},
    {"9d0bdab1-a553-4bc9-be8c-a2e6c08e4d13", "02a8ab3c-b278-4de5-a096-852829671ae7", "api_group_002"},
    {"3f30d49b-220f-4b11-9e94-c2fd3c1cc587", "73c58022-f20d-495a-a188-85d718647f09", "api_group_001"},
};

// Seed 003 (SecMaster, "Querying the List of Purchased Resources"): the example response,
// compact, values byte-for-byte — followed by an entry that is NOT in the seed: region_id null
// (the doc: null = the current region) with one POSTPAID resource lacking expire_time and
// order_id and with an empty tag_list. It is here so the smallest dataset already exercises a
// null region and a missing expiry (the doc calls both fields optional by charging mode).
constexpr std::string_view seed_orders =
    R"({"resources":[{"region_id":"demo-region","project_id":"15645222e8744afa985c93dab6341da6","resources":[{"resource_id":"c9528aa2-d593-11f0-a34e-fa163e798915","resource_type":"xxx.resource.type.secmaster.typical","resource_spec_code":"csb.professional","resource_size":2,"resource_status":0,"to_period":false,"order_id":"CS2510212051NLDL4","charging_mode":"PREPAID","create_time":1765349400000,"expire_time":1796885400000,"tag_list":[{"key":"dept","value":"dev"}]}]},)"
    R"({"region_id":null,"project_id":"0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e","resources":[{"resource_id":"5f0e7c1a-2b3d-4e5f-8a9b-0c1d2e3f4a5b","resource_type":"xxx.resource.type.secmaster.typical","resource_spec_code":"csb.standard","resource_size":1,"resource_status":0,"to_period":true,"charging_mode":"POSTPAID","create_time":1765349400000,"tag_list":[]}]}]})";

std::runtime_error file_error(const std::filesystem::path& file, std::string_view what) {
    return std::runtime_error(file.string() + ": " + std::string(what));
}

std::string in_quotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

// Whitespace removed, every other byte (number spelling, string escapes) kept.
std::string minified(const std::filesystem::path& file, std::string_view raw, std::string_view what) {
    std::string out(raw.size(), '\0');
    std::size_t length = 0;
    if (const auto error = simdjson::minify(raw.data(), raw.size(), out.data(), length)) {
        throw file_error(file, std::string(what) + ": cannot minify: " + simdjson::error_message(error));
    }
    out.resize(length);
    return out;
}

std::string string_field(const std::filesystem::path& file, simdjson::dom::element item, std::size_t index,
                         const char* key) {
    std::string_view value;
    if (item[key].get_string().get(value) != simdjson::SUCCESS) {
        throw file_error(file, "purchases[" + std::to_string(index) + "]." + key + ": expected a string");
    }
    return std::string(value);
}

}  // namespace

dataset dataset::seeds() {
    dataset out;
    for (std::size_t i = 0; i < std::size(seed_purchases); ++i) {
        const auto& ids = seed_purchase_ids[i];
        out.purchases.push_back({std::string(ids.id), std::string(ids.group_id), std::string(ids.group_name),
                                 std::string(seed_purchases[i])});
    }
    out.orders_json = std::string(seed_orders);
    return out;
}

dataset dataset::from_file(const std::filesystem::path& file) {
    simdjson::padded_string text;
    if (const auto error = simdjson::padded_string::load(file.string()).get(text)) {
        throw file_error(file, std::string("cannot read: ") + simdjson::error_message(error));
    }

    // Pass 1 (DOM): the whole file is valid JSON of the expected shape.
    simdjson::dom::parser dom;
    simdjson::dom::element root;
    if (const auto error = dom.parse(text).get(root)) {
        throw file_error(file, std::string("invalid JSON: ") + simdjson::error_message(error));
    }
    if (!root.is_object()) {
        throw file_error(file, "expected an object {\"purchases\": [...], \"orders\": {...}}");
    }
    simdjson::dom::array items;
    if (root["purchases"].get_array().get(items) != simdjson::SUCCESS) {
        throw file_error(file, "\"purchases\": expected an array");
    }
    simdjson::dom::object orders_object;
    if (root["orders"].get_object().get(orders_object) != simdjson::SUCCESS) {
        throw file_error(file, "\"orders\": expected an object (the body of GET /v1/subscriptions/orders)");
    }

    dataset out;
    std::set<std::string, std::less<>> seen;
    std::size_t index = 0;
    for (const auto item : items) {
        if (!item.is_object()) {
            throw file_error(file, "purchases[" + std::to_string(index) + "]: expected an object");
        }
        purchase p;
        p.id = string_field(file, item, index, "id");
        p.group_id = string_field(file, item, index, "group_id");
        p.group_name = string_field(file, item, index, "group_name");
        if (!seen.insert(p.id).second) {
            throw file_error(file, "purchases[" + std::to_string(index) + "].id: duplicate " + in_quotes(p.id));
        }
        out.purchases.push_back(std::move(p));
        ++index;
    }

    // Pass 2 (On-Demand): the raw text of each purchase and of orders, so numbers keep their
    // spelling (DOM would re-serialise 1.50 as 1.5).
    simdjson::ondemand::parser ondemand;
    simdjson::ondemand::document doc;
    simdjson::ondemand::object top;
    if (ondemand.iterate(text).get(doc) != simdjson::SUCCESS || doc.get_object().get(top) != simdjson::SUCCESS) {
        throw file_error(file, "cannot re-read the document");
    }
    for (auto field : top) {
        std::string_view key;
        if (field.unescaped_key().get(key) != simdjson::SUCCESS) {
            throw file_error(file, "cannot read a key");
        }
        if (key == "purchases") {
            simdjson::ondemand::array array;
            if (field.value().get_array().get(array) != simdjson::SUCCESS) {
                throw file_error(file, "\"purchases\": expected an array");
            }
            std::size_t i = 0;
            for (auto element : array) {
                simdjson::ondemand::object object;
                std::string_view raw;
                if (element.get_object().get(object) != simdjson::SUCCESS ||
                    object.raw_json().get(raw) != simdjson::SUCCESS || i >= out.purchases.size()) {
                    throw file_error(file, "purchases[" + std::to_string(i) + "]: cannot read");
                }
                out.purchases[i].json = minified(file, raw, "purchases[" + std::to_string(i) + "]");
                ++i;
            }
        } else if (key == "orders") {
            simdjson::ondemand::object object;
            std::string_view raw;
            if (field.value().get_object().get(object) != simdjson::SUCCESS ||
                object.raw_json().get(raw) != simdjson::SUCCESS) {
                throw file_error(file, "\"orders\": cannot read");
            }
            out.orders_json = minified(file, raw, "orders");
        }
    }
    return out;
}

std::string dataset::to_json() const {
    std::string out = R"({"purchases":[)";
    for (std::size_t i = 0; i < purchases.size(); ++i) {
        if (i != 0) {
            out.push_back(',');
        }
        out += purchases[i].json;
    }
    out += R"(],"orders":)";
    out += orders_json.empty() ? std::string("{}") : orders_json;
    out.push_back('}');
    return out;
}

namespace {

// Counts for the startup banner; an orders body that is not the documented shape counts 0.
std::pair<std::size_t, std::size_t> count_orders(const std::string& orders_json) {
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    simdjson::dom::array groups;
    if (parser.parse(orders_json).get(root) != simdjson::SUCCESS ||
        root["resources"].get_array().get(groups) != simdjson::SUCCESS) {
        return {0, 0};
    }
    std::size_t resources = 0;
    for (const auto group : groups) {
        simdjson::dom::array items;
        if (group["resources"].get_array().get(items) == simdjson::SUCCESS) {
            resources += items.size();
        }
    }
    return {groups.size(), resources};
}

}  // namespace

std::size_t dataset::resource_group_count() const { return count_orders(orders_json).first; }

std::size_t dataset::resource_count() const { return count_orders(orders_json).second; }

}  // namespace subsync::emulator
