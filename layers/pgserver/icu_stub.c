/* Stands in for ICU's libicuuc in the server layers.
 *
 * The server loads libxml2, copied from the build host. Debian's libxml2 links ICU for
 * the character converters iconv lacks, and ICU's C++ runtime needs a glibc newer than
 * Amazon Linux 2023's 2.34. PostgreSQL hands libxml2 UTF-8 only, so this library
 * provides the few functions libxml2 calls (it binds every symbol at load time) and
 * answers that no ICU converter exists: libxml2 then uses its own and iconv's.
 * Built by the Makefile with -DICU_SUFFIX=<the host ICU's major>, like ICU's own
 * renamed symbols (ucnv_open_72).
 */
#define RENAMED2(name, suffix) name##_##suffix
#define RENAMED1(name, suffix) RENAMED2(name, suffix)
#define ICU(name) RENAMED1(name, ICU_SUFFIX)

/* UErrorCode U_FILE_ACCESS_ERROR: "the requested file cannot be found". */
#define NO_SUCH_CONVERTER 4

void *ICU(ucnv_open)(const char *name, int *error) {
    (void)name;
    *error = NO_SUCH_CONVERTER;
    return 0;
}

void ICU(ucnv_close)(void *converter) { (void)converter; }

/* Never reached (no converter opens); present because libxml2 binds them at load. */
void ICU(ucnv_convertEx)(void) {}
void ICU(ucnv_setToUCallBack)(void) {}
void ICU(ucnv_setFromUCallBack)(void) {}
void ICU(UCNV_TO_U_CALLBACK_STOP)(void) {}
void ICU(UCNV_FROM_U_CALLBACK_STOP)(void) {}
