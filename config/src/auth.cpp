// [account.auth]: which credentials an account uses, and where each secret comes from.

#include "detail/reader.hpp"

#include <array>

namespace subsync::config::detail {
namespace {

struct type_keys {
    std::string_view type;
    auth_type value;
    std::vector<std::string_view> keys;  ///< keys that belong to this type only
};

std::vector<std::string_view> secret_keys(std::string_view name) {
    static const std::array<std::string, 12> storage = [] {
        std::array<std::string, 12> a;
        std::size_t i = 0;
        for (std::string_view n : {"token", "password", "ak", "sk"})
            for (std::string_view suffix : {"_env", "_file", "_credential"}) a[i++] = std::string(n) + std::string(suffix);
        return a;
    }();
    std::vector<std::string_view> out;
    for (const auto& k : storage)
        if (k.starts_with(name) && k[name.size()] == '_') out.push_back(k);
    return out;
}

const std::vector<type_keys>& types() {
    static const std::vector<type_keys> t = [] {
        std::vector<type_keys> v{
            {"token", auth_type::token, secret_keys("token")},
            {"password", auth_type::password, {"user", "domain", "refresh_margin"}},
            {"aksk", auth_type::aksk,
             {"security_token_env", "security_token_file", "security_token_credential"}},
        };
        for (auto k : secret_keys("password")) v[1].keys.push_back(k);
        for (auto k : secret_keys("ak")) v[2].keys.push_back(k);
        for (auto k : secret_keys("sk")) v[2].keys.push_back(k);
        return v;
    }();
    return t;
}

}  // namespace

void read_secret_ref(const table_reader& r, std::string_view name, bool required, secret_ref& out) {
    const std::string env_key = std::string(name) + "_env";
    const std::string file_key = std::string(name) + "_file";
    const std::string credential_key = std::string(name) + "_credential";
    const std::string one_of = fmt::format("give exactly one of {}, {}, {}", env_key, file_key, credential_key);
    std::string first;  // the source already taken, for the conflict message
    line_t first_line = 0;
    bool any_given = false;
    for (const std::string& k : {env_key, file_key, credential_key}) {
        any_given = any_given || r.node(k) != nullptr;
        std::optional<std::string> value = r.string(k);
        if (!value) continue;
        if (value->empty()) {
            r.invalid(k, "must not be empty");
            continue;
        }
        const line_t line = line_of(r.node(k)->source());
        if (!first.empty()) {
            r.invalid(k, fmt::format("conflicts with {} (line {}); {}", first, first_line, one_of));
            continue;
        }
        first = k;
        first_line = line;
        if (k == env_key) {
            if (value->find('=') != std::string::npos || value->find('\0') != std::string::npos)
                r.invalid(k, fmt::format("\"{}\" is not a valid environment variable name", *value));
            out.env = std::move(*value);
        } else if (k == file_key) {
            out.file = r.report().resolve(*value).string();
        } else {
            if (value->find('/') != std::string::npos || *value == "." || *value == "..")
                r.invalid(k, fmt::format("\"{}\" is not a credential name; give the name used in LoadCredential=, "
                                         "without '/'",
                                         *value));
            out.credential = std::move(*value);
        }
    }
    if (required && !any_given)
        r.report().error(r.line(), r.key(name), fmt::format("missing {} source; {}", name, one_of));
}

void read_auth(const table_reader& account, auth_config& out) {
    const toml::table* t = account.table("auth");
    if (t == nullptr) {
        if (account.node("auth") == nullptr)
            account.report().error(account.line(), account.key("auth"), "required table [account.auth] is missing");
        return;
    }
    std::vector<std::string_view> known{"type", "project_id", "project", "iam_endpoint"};
    for (const auto& tk : types()) known.insert(known.end(), tk.keys.begin(), tk.keys.end());
    const table_reader r(*t, account.key("auth"), known, account.report());

    const type_keys* chosen = &types()[0];
    if (std::optional<std::string> type = r.string("type")) {
        auto it = std::find_if(types().begin(), types().end(), [&](const type_keys& tk) { return tk.type == *type; });
        if (it == types().end())
            return r.invalid("type", fmt::format("unknown auth type \"{}\"; valid types: \"token\", \"password\", \"aksk\"",
                                                 *type));
        chosen = &*it;
    }
    out.type = chosen->value;
    // A key of another type is a mistake worth naming (e.g. token_env left over with type = "aksk").
    for (const auto& tk : types()) {
        if (&tk == chosen) continue;
        for (auto k : tk.keys)
            if (r.node(k) != nullptr)
                r.invalid(k, fmt::format("only used with type = \"{}\" (this account has type = \"{}\")", tk.type,
                                         chosen->type));
    }

    if (auto id = r.string("project_id")) out.project_id = std::move(*id);
    switch (out.type) {
        case auth_type::token:
            for (std::string_view k : {"project_id", "project", "iam_endpoint"})
                if (r.node(k) != nullptr) r.invalid(k, "only used with type = \"password\" or \"aksk\"");
            read_secret_ref(r, "token", true, out.token);
            break;
        case auth_type::password: {
            read_endpoint(r, "iam_endpoint", out.iam_endpoint);
            if (auto user = r.string("user", true)) out.user = std::move(*user);
            if (auto domain = r.string("domain", true)) out.domain = std::move(*domain);
            if (auto project = r.string("project")) out.project = std::move(*project);
            if (out.project.empty() == out.project_id.empty())
                r.report().error(r.line(), r.key("project"),
                                 "give exactly one of project (name, e.g. \"cn-north-4\") or project_id for the token scope");
            r.duration("refresh_margin", milliseconds(0), std::chrono::hours(12), out.refresh_margin);
            read_secret_ref(r, "password", true, out.password);
            break;
        }
        case auth_type::aksk:
            // X-Project-Id as the SDKs send it: project_id, or looked up by the region's
            // project name at IAM (GET /v3/projects?name=...) when only `project` is given.
            if (auto project = r.string("project")) out.project = std::move(*project);
            if (!out.project.empty() && !out.project_id.empty())
                r.invalid("project", "give project (a name to look up) or project_id, not both");
            if (r.node("iam_endpoint") != nullptr) read_endpoint(r, "iam_endpoint", out.iam_endpoint);
            else if (!out.project.empty())
                r.report().error(r.line(), r.key("iam_endpoint"),
                                 "required with project: where to look the project id up, e.g. "
                                 "\"https://iam.cn-north-4.myhuaweicloud.com\"");
            read_secret_ref(r, "ak", true, out.ak);
            read_secret_ref(r, "sk", true, out.sk);
            read_secret_ref(r, "security_token", false, out.security_token);
            break;
    }
}

}  // namespace subsync::config::detail
