// The request and answer shapes follow shared/refs/huawei-cloud.md ("IAM password → token").
// Ids in the answer are derived from names (same name, same id), so tests can predict them.

#include "iam.hpp"

#include "json_writer.hpp"

#include "aksk.hpp"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <optional>

namespace subsync::emulator::detail {

reply iam_error(unsigned status, std::string_view title, std::string_view message) {
    std::string body = R"({"error":{"code":)" + std::to_string(status) + ",";
    append_key(body, "message");
    append_string(body, message);
    body += ",";
    append_key(body, "title");
    append_string(body, title);
    body += "}}";
    return {status, std::move(body), endpoint::iam};
}

namespace {

reply bad_request(std::string_view message) { return iam_error(400, "Bad Request", message); }

constexpr std::string_view wrong_password = "The username or password is wrong.";

std::string derived_id(std::string_view kind, std::string_view name) {
    return aksk::sha256_hex(std::string(kind) + ":" + std::string(name)).substr(0, 32);
}

enum class scope_kind { project, domain };

struct token_request {
    std::string_view user, password, domain;
    scope_kind scope = scope_kind::project;
    std::optional<std::string_view> scope_name, scope_id;
};

// The field at `path` as a non-empty string; the dotted path names it in the 400 message.
std::optional<std::string_view> string_at(simdjson::dom::element root, std::string_view path) {
    std::string pointer(1, '/');  // appended, not "/" + string: GCC 12 -O3 -Wrestrict (faults.cpp)
    pointer += path;
    std::replace(pointer.begin(), pointer.end(), '.', '/');
    std::string_view value;
    if (root.at_pointer(pointer).get_string().get(value) != simdjson::SUCCESS || value.empty()) {
        return std::nullopt;
    }
    return value;
}

// Returns the problem on failure. `parser` owns the strings `out` points into.
std::optional<std::string> parse(simdjson::dom::parser& parser, std::string_view body, token_request& out) {
    simdjson::dom::element root;
    if (parser.parse(body.data(), body.size()).get(root) != simdjson::SUCCESS) {
        return "The request body is not valid JSON.";
    }
    simdjson::dom::array methods;
    bool password_method = false;
    if (root.at_pointer("/auth/identity/methods").get_array().get(methods) == simdjson::SUCCESS) {
        for (const auto m : methods) {
            password_method |= m.is_string() && std::string_view(m) == "password";
        }
    }
    if (!password_method) {
        return "auth.identity.methods: expected an array holding \"password\"";
    }
    const std::string_view user = "auth.identity.password.user.";
    for (const char* field : {"name", "password", "domain.name"}) {
        if (!string_at(root, std::string(user) + field)) {
            return std::string(user) + field + ": expected a non-empty string";
        }
    }
    out.user = *string_at(root, std::string(user) + "name");
    out.password = *string_at(root, std::string(user) + "password");
    out.domain = *string_at(root, std::string(user) + "domain.name");
    if (root.at_pointer("/auth/scope/project").error() == simdjson::SUCCESS) {
        out.scope = scope_kind::project;
        out.scope_name = string_at(root, "auth.scope.project.name");
        out.scope_id = string_at(root, "auth.scope.project.id");
    } else if (root.at_pointer("/auth/scope/domain").error() == simdjson::SUCCESS) {
        out.scope = scope_kind::domain;
        out.scope_name = string_at(root, "auth.scope.domain.name");
        out.scope_id = string_at(root, "auth.scope.domain.id");
    } else {
        return "auth.scope: expected {\"project\": {...}} or {\"domain\": {...}}";
    }
    if (!out.scope_name && !out.scope_id) {
        return "auth.scope: expected a name or an id";
    }
    return std::nullopt;
}

void append_named(std::string& out, std::string_view key, std::string_view id, std::string_view name) {
    append_key(out, key);
    out += "{";
    append_key(out, "id");
    append_string(out, id);
    out += ",";
    append_key(out, "name");
    append_string(out, name);
    out += "}";
}

std::string token_body(const token_request& r, bool catalog, wall_time issued, wall_time expires) {
    const std::string domain_id = derived_id("domain", r.domain);
    std::string domain;  // {"id":…,"name":…} of the user's account
    append_named(domain, "domain", domain_id, r.domain);

    std::string out = R"({"token":{)";
    append_key(out, "expires_at");
    append_string(out, iam_time(expires));
    out += R"(,"methods":["password"],)";
    if (catalog) {
        out += R"("catalog":[],)";
    }
    if (r.scope == scope_kind::domain) {
        out += domain + ",";
    } else {
        // Scoped by name: a stable id from it. Scoped by id: the name is not known here, so it
        // is the id too.
        const std::string id = r.scope_id ? std::string(*r.scope_id) : derived_id("project", *r.scope_name);
        const std::string_view name = r.scope_name ? *r.scope_name : *r.scope_id;
        append_key(out, "project");
        out += "{" + domain + ",";
        append_key(out, "id");
        append_string(out, id);
        out += ",";
        append_key(out, "name");
        append_string(out, name);
        out += "},";
    }
    out += R"("roles":[{"id":"0","name":"op_service"}],)";
    append_key(out, "issued_at");
    append_string(out, iam_time(issued));
    out += ",";
    append_key(out, "user");
    out += "{" + domain + ",";
    append_key(out, "id");
    append_string(out, derived_id("user", std::string(r.domain) + "/" + std::string(r.user)));
    out += ",";
    append_key(out, "name");
    append_string(out, r.user);
    out += R"(,"password_expires_at":""}}})";
    return out;
}

}  // namespace

std::string iam_time(wall_time t) {
    using namespace std::chrono;
    const auto micros = floor<microseconds>(t);
    const auto day = floor<days>(micros);
    const year_month_day ymd{day};
    const hh_mm_ss hms{micros - day};
    std::array<char, 40> text{};
    const int n = std::snprintf(text.data(), text.size(), "%04d-%02u-%02uT%02d:%02d:%02d.%06lldZ",
                                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                                static_cast<unsigned>(ymd.day()), static_cast<int>(hms.hours().count()),
                                static_cast<int>(hms.minutes().count()), static_cast<int>(hms.seconds().count()),
                                static_cast<long long>(hms.subseconds().count()));
    return std::string(text.data(), static_cast<std::size_t>(std::max(n, 0)));
}

reply issue_token(const incoming& request, std::span<const iam_user> users, std::chrono::seconds ttl,
                  gateway& tokens, wall_time wall, steady_time now) {
    if (request.method != "POST") {
        auto out = iam_error(405, "Method Not Allowed", "The method is not allowed for the requested URL.");
        out.headers.emplace_back("Allow", "POST");
        return out;
    }
    simdjson::dom::parser parser;
    token_request r;
    if (const auto problem = parse(parser, request.body, r)) {
        return bad_request(*problem);
    }
    const auto user = std::find_if(users.begin(), users.end(), [&](const iam_user& u) {
        return u.name == r.user && u.domain == r.domain;
    });
    if (user == users.end() || user->password != r.password) {
        return iam_error(401, "Unauthorized", wrong_password);
    }
    if (r.scope == scope_kind::domain && ((r.scope_name && *r.scope_name != r.domain) ||
                                          (r.scope_id && *r.scope_id != derived_id("domain", r.domain)))) {
        return iam_error(401, "Unauthorized", "The request you have made requires authentication.");
    }
    const std::string_view query = request.target.substr(std::min(request.target.size(), request.target.find('?')));
    const bool catalog = query.find("nocatalog=true") == std::string_view::npos;
    reply out{201, token_body(r, catalog, wall, wall + ttl), endpoint::iam};
    out.headers.emplace_back("X-Subject-Token", tokens.issue_token(now, ttl));
    return out;
}

reply list_projects(const incoming& request, bool authenticated, std::span<const project> projects) {
    if (request.method != "GET") {
        auto out = iam_error(405, "Method Not Allowed", "The method is not allowed for the requested URL.");
        out.headers.emplace_back("Allow", "GET");
        return out;
    }
    if (!authenticated) {
        return iam_error(401, "Unauthorized", "The request you have made requires authentication.");
    }
    // ?name=REGION filters by exact name; other parameters are ignored.
    std::optional<std::string> name;
    const auto question = request.target.find('?');
    for (std::string_view rest = question == std::string_view::npos ? std::string_view{}
                                                                      : request.target.substr(question + 1);
         !rest.empty();) {
        const auto amp = rest.find('&');
        const std::string_view pair = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
        if (pair.starts_with("name=")) {
            name = url_decode(pair.substr(5));
            if (!name) {
                return bad_request("name: malformed percent-encoding");
            }
        }
    }
    constexpr std::string_view iam_base = "https://iam.myhuaweicloud.com/v3/projects";
    std::string out = R"({"projects":[)";
    bool first = true;
    for (const auto& p : projects) {
        if (name && p.name != *name) {
            continue;
        }
        if (!first) {
            out += ",";
        }
        first = false;
        out += "{";
        append_key(out, "domain_id");
        append_string(out, derived_id("domain", "emulator"));
        out += R"(,"is_domain":false,)";
        append_key(out, "parent_id");
        append_string(out, derived_id("domain", "emulator"));
        out += ",";
        append_key(out, "name");
        append_string(out, p.name);
        out += R"(,"description":"",)";
        out += R"("links":{"next":null,"previous":null,"self":)";
        append_string(out, std::string(iam_base) + "/" + p.id);
        out += "},";
        append_key(out, "id");
        append_string(out, p.id);
        out += R"(,"enabled":true})";
    }
    out += R"(],"links":{"next":null,"previous":null,"self":)";
    append_string(out, iam_base);
    out += "}}";
    return {200, std::move(out), endpoint::iam_projects};
}

reply echo_iam_request(const incoming& request) {
    // What a broken IAM front does: the whole request body, password included, in the message.
    return iam_error(401, "Unauthorized", "The username or password is wrong: " + std::string(request.body));
}

}  // namespace subsync::emulator::detail
