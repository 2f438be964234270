#include "tls_cert.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <array>
#include <memory>
#include <stdexcept>

namespace subsync::emulator::detail {

namespace {

template <class T, void (*free_fn)(T*)>
struct openssl_deleter {
    void operator()(T* p) const noexcept { free_fn(p); }
};
template <class T, void (*free_fn)(T*)>
using openssl_ptr = std::unique_ptr<T, openssl_deleter<T, free_fn>>;

using pkey_ptr = openssl_ptr<EVP_PKEY, EVP_PKEY_free>;
using pkey_ctx_ptr = openssl_ptr<EVP_PKEY_CTX, EVP_PKEY_CTX_free>;
using x509_ptr = openssl_ptr<X509, X509_free>;
using extension_ptr = openssl_ptr<X509_EXTENSION, X509_EXTENSION_free>;
using bignum_ptr = openssl_ptr<BIGNUM, BN_free>;
using bio_ptr = openssl_ptr<BIO, BIO_free_all>;

[[noreturn]] void fail(const char* step) {
    std::array<char, 256> reason{};
    ERR_error_string_n(ERR_get_error(), reason.data(), reason.size());
    ERR_clear_error();
    throw std::runtime_error(std::string("self-signed certificate: ") + step + ": " +
                             reason.data());
}

void check(int ok, const char* step) {
    if (ok <= 0) {
        fail(step);
    }
}

pkey_ptr make_p256_key() {
    const pkey_ctx_ptr ctx{EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr)};
    if (!ctx) {
        fail("EVP_PKEY_CTX_new_from_name");
    }
    check(EVP_PKEY_keygen_init(ctx.get()), "EVP_PKEY_keygen_init");
    check(EVP_PKEY_CTX_set_group_name(ctx.get(), "P-256"), "EVP_PKEY_CTX_set_group_name");
    EVP_PKEY* key = nullptr;
    check(EVP_PKEY_generate(ctx.get(), &key), "EVP_PKEY_generate");
    return pkey_ptr{key};
}

void add_extension(X509* cert, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
    const extension_ptr ext{X509V3_EXT_conf_nid(nullptr, &ctx, nid, value)};
    if (!ext) {
        fail(value);
    }
    check(X509_add_ext(cert, ext.get(), -1), "X509_add_ext");
}

std::string drain(BIO* bio) {
    std::string out(BIO_ctrl_pending(bio), '\0');
    if (!out.empty()) {
        check(BIO_read(bio, out.data(), static_cast<int>(out.size())), "BIO_read");
    }
    return out;
}

}  // namespace

pem_pair make_self_signed_cert() {
    const pkey_ptr key = make_p256_key();
    const x509_ptr cert{X509_new()};
    if (!cert) {
        fail("X509_new");
    }
    check(X509_set_version(cert.get(), X509_VERSION_3), "X509_set_version");

    std::array<unsigned char, 16> serial{};
    check(RAND_bytes(serial.data(), static_cast<int>(serial.size())), "RAND_bytes");
    serial[0] &= 0x7FU;  // a positive serial
    const bignum_ptr serial_bn{BN_bin2bn(serial.data(), static_cast<int>(serial.size()), nullptr)};
    if (!serial_bn || BN_to_ASN1_INTEGER(serial_bn.get(), X509_get_serialNumber(cert.get())) == nullptr) {
        fail("serial number");
    }

    if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -5 * 60) == nullptr ||
        X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24 * 60 * 60) == nullptr) {
        fail("validity");
    }
    check(X509_set_pubkey(cert.get(), key.get()), "X509_set_pubkey");

    X509_NAME* name = X509_get_subject_name(cert.get());
    check(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                     reinterpret_cast<const unsigned char*>("subsync test emulator"), -1, -1, 0),
          "subject O");
    check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"),
                                     -1, -1, 0),
          "subject CN");
    check(X509_set_issuer_name(cert.get(), name), "X509_set_issuer_name");

    // No keyUsage: with one lacking keyCertSign, OpenSSL would not treat the certificate as
    // self-signed and a client trusting it as its CA file could not build the chain.
    add_extension(cert.get(), NID_basic_constraints, "critical,CA:FALSE");
    add_extension(cert.get(), NID_ext_key_usage, "serverAuth");
    add_extension(cert.get(), NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
    add_extension(cert.get(), NID_subject_key_identifier, "hash");

    if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) {
        fail("X509_sign");
    }

    pem_pair out;
    const bio_ptr cert_bio{BIO_new(BIO_s_mem())};
    const bio_ptr key_bio{BIO_new(BIO_s_mem())};
    if (!cert_bio || !key_bio) {
        fail("BIO_new");
    }
    check(PEM_write_bio_X509(cert_bio.get(), cert.get()), "PEM_write_bio_X509");
    check(PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr),
          "PEM_write_bio_PrivateKey");
    out.cert = drain(cert_bio.get());
    out.key = drain(key_bio.get());
    return out;
}

}  // namespace subsync::emulator::detail
