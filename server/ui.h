#ifndef SW_UI_H_
#define SW_UI_H_

#include <stddef.h>

/* The dashboard page (server/ui.html), embedded at build time. */
extern const unsigned char sw_ui_html[];
extern const size_t sw_ui_html_len;

#endif
