/* C entry point of the kernel library for C callers (tests, the sanitizer driver). */
#ifndef SKM_H
#define SKM_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
#include "skm_api.h"
#ifdef __cplusplus
}
#endif
#endif
