// libpq is loaded at run time (destinations/src/libpq.hpp): a process maps it only once a
// destination needs it, and a machine without it gets an error that says what to install.

#include "libpq.hpp"

#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <string>

namespace subsync {
namespace {

namespace d = destinations::detail;

bool maps_libpq() { return test::read_file("/proc/self/maps").find("/libpq.so.5") != std::string::npos; }

TEST(Libpq, AMissingLibraryIsAnErrorNamingItAndItsPackage) {
    try {
        (void)d::load_libpq("libpq-absent.so.5");
        FAIL() << "loaded a library that does not exist";
    } catch (const d::pg_error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("libpq-absent.so.5 cannot be loaded ("), std::string::npos) << what;
        EXPECT_NE(what.find("need the libpq5 package (apt install libpq5)"), std::string::npos) << what;
    }
}

TEST(Libpq, LoadedOnFirstUseAndEveryFunctionResolved) {
    EXPECT_FALSE(maps_libpq()) << "linked, not loaded on demand: the test binary maps libpq before any use";
    const auto& pq = d::libpq();
    EXPECT_TRUE(maps_libpq());
    EXPECT_EQ(&pq, &d::libpq()) << "loaded twice";
    // A call through the table reaches the real library: parse a connection string.
    char* error = nullptr;
    PQconninfoOption* options = pq.PQconninfoParse("host=db.invalid password=s3cret", &error);
    ASSERT_NE(options, nullptr) << (error != nullptr ? error : "");
    std::string password;
    for (auto* o = options; o->keyword != nullptr; ++o)
        if (o->val != nullptr && std::string(o->keyword) == "password") password = o->val;
    pq.PQconninfoFree(options);
    EXPECT_EQ(password, "s3cret");
}

}  // namespace
}  // namespace subsync
